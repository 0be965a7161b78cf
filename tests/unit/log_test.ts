import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.11.0";
import type { LogRecord } from "npm:@logtape/logtape@^2.4.2";
import { lineFormatter, lineSink } from "../../lib/cli/log.ts";
import { formatTimestamp } from "../../lib/core/text.ts";

Deno.test("log: timestamps are local YYYY-MM-DD HH:MM:SS,mmm", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 4_102_444_800_000 }), (ms) => {
      const text = formatTimestamp(ms);
      const [date, time] = text.split(" ");
      const [y, mo, d] = date!.split("-").map(Number);
      const [hms, milli] = time!.split(",");
      const [h, mi, s] = hms!.split(":").map(Number);
      assert.match(text, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}$/);
      assert.equal(new Date(y!, mo! - 1, d!, h!, mi!, s!, Number(milli)).getTime(), ms);
    }),
  );
});

Deno.test("log: a record becomes the original tool's line, values bare and escaped", () => {
  const record = {
    category: ["folder-mirror"],
    level: "warning" as const,
    message: ["File ", "a\nb.txt", " was not copied."],
    rawMessage: "File {path} was not copied.",
    timestamp: new Date(2026, 10, 26, 15, 4, 5, 123).getTime(),
    properties: { path: "a\nb.txt" },
  };
  assert.equal(
    lineFormatter(record),
    "2026-11-26 15:04:05,123 [WARNING]: File a\\nb.txt was not copied.\n",
  );
});

Deno.test("log: the line sink writes every line once to the file and in order to out/err", async () => {
  const chunks = { file: [] as string[], out: [] as string[], err: [] as string[] };
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  const file = { writeSync: (b: Uint8Array) => (chunks.file.push(text(b)), b.length) };
  const out = { write: (b: Uint8Array) => Promise.resolve((chunks.out.push(text(b)), b.length)) };
  const err = { write: (b: Uint8Array) => Promise.resolve((chunks.err.push(text(b)), b.length)) };
  const plain = (record: LogRecord) => `${record.message.join("")}\n`;
  const sink = lineSink(file, out, err, { fileFormatter: plain, consoleFormatter: plain });
  const levels = ["info", "info", "error", "warning", "info"] as const;
  levels.forEach((level, i) =>
    sink({
      category: [],
      level,
      message: [`line ${i}`],
      rawMessage: "",
      timestamp: 0,
      properties: {},
    })
  );
  assert.deepEqual(chunks.file, [], "buffered until flushed");
  await sink[Symbol.asyncDispose]();
  assert.equal(chunks.file.join(""), levels.map((_, i) => `line ${i}\n`).join(""));
  assert.deepEqual(chunks.out, ["line 0\nline 1\n", "line 4\n"]);
  assert.deepEqual(chunks.err, ["line 2\nline 3\n"]);
});

Deno.test("log: a console that cannot be written to does not stop the file log", async () => {
  const lines: string[] = [];
  const file = {
    writeSync: (b: Uint8Array) => (lines.push(new TextDecoder().decode(b)), b.length),
  };
  const broken = { write: () => Promise.reject(new Deno.errors.BrokenPipe("gone")) };
  const plain = (record: LogRecord) => `${record.message.join("")}\n`;
  const sink = lineSink(file, broken, broken, { fileFormatter: plain, consoleFormatter: plain });
  sink({
    category: [],
    level: "info",
    message: ["kept"],
    rawMessage: "",
    timestamp: 0,
    properties: {},
  });
  await sink[Symbol.asyncDispose]();
  assert.deepEqual(lines, ["kept\n"]);
});

import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.11.0";
import { applyPlan, MIN_WORKER_COPIES, type Outcome } from "../lib/apply.ts";
import { CopyWorker } from "../lib/copy_worker.ts";
import { findChangedFiles } from "../lib/compare.ts";
import { Hasher } from "../lib/hash.ts";
import { PairIndex } from "../lib/pair_index.ts";
import { MirrorState } from "../lib/state.ts";
import { Mirror } from "../lib/mirror.ts";
import { configure, getLogger, type LogRecord, reset } from "npm:@logtape/logtape@^2.4.2";
import { type Disk, realDisk } from "../lib/disk.ts";
import { formatTimestamp, lineFormatter, lineSink } from "../lib/log.ts";
import { runLoop } from "../lib/loop.ts";
import { parseOptions, UsageError } from "../lib/options.ts";
import { plan } from "../lib/plan.ts";
import { emptyTally, reportSummary } from "../lib/report.ts";
import { scanTree } from "../lib/scan.ts";
import { PackedTree } from "../lib/tree.ts";
import { treeDigest } from "../lib/verify.ts";
import type { Entry } from "../lib/entry.ts";
import { assertMirrored, listTree, withWork } from "./helpers.ts";

/** Run `body` with the "test" logger's records collected (LogTape reset after). */
async function withRecords(
  body: (records: LogRecord[]) => Promise<void> | void,
): Promise<void> {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { collect: (record: LogRecord) => void records.push(record) },
    loggers: [
      { category: ["test"], lowestLevel: "info", sinks: ["collect"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
  });
  try {
    await body(records);
  } finally {
    await reset();
  }
}

/** A Mirror of `work/src` into `work/rep` whose log goes nowhere (state: `state`, or in memory). */
function mirrorIn(work: string, disk: Disk = realDisk, state?: MirrorState): Mirror {
  const roots = { source: `${work}/src`, replica: `${work}/rep` };
  return new Mirror(roots, disk, getLogger(["test"]), state ? { state } : {});
}

Deno.test("options: defaults are the original tool's", async () => {
  const result = await parseOptions([]);
  assert.equal(result.kind, "run");
  if (result.kind !== "run") return;
  assert.deepEqual(result.options, {
    source: "source",
    replica: "replica",
    logFile: "log.txt",
    stateFile: "log.txt.state",
    intervalSeconds: 10,
    once: false,
    watch: false,
    dryRun: false,
    verify: false,
    logFormat: "text",
    console: "normal",
    exclude: [],
  });
  assert.ok(Object.isFrozen(result.options));
});

Deno.test("options: --flag=value and --flag value both work; --exclude repeats", async () => {
  const parsed = await parseOptions([
    "--source=a",
    "--replica",
    "b",
    "--time-interval=2.5",
    "--exclude=*.tmp",
    "--exclude",
    "build/",
    "--max-delete=0",
    "--log-format=json",
    "--quiet",
  ]);
  assert.equal(parsed.kind, "run");
  if (parsed.kind !== "run") return;
  const { source, replica, intervalSeconds, exclude, maxDelete, logFormat, console } =
    parsed.options;
  assert.deepEqual(
    { source, replica, intervalSeconds, exclude, maxDelete, logFormat, console },
    {
      source: "a",
      replica: "b",
      intervalSeconds: 2.5,
      exclude: ["*.tmp", "build/"],
      maxDelete: 0,
      logFormat: "json",
      console: "quiet",
    },
  );
});

Deno.test("options: fractional intervals are accepted, non-positive ones refused", async () => {
  const parsed = await parseOptions(["--time-interval", "0.25"]);
  assert.equal(parsed.kind === "run" && parsed.options.intervalSeconds, 0.25);
  for (const bad of ["0", "-3", "NaN", "Infinity", "1e400", "ten", " "]) {
    await assert.rejects(
      parseOptions(["--time-interval", bad]),
      (error) => error instanceof UsageError && error.message.includes(`"${bad}"`),
      bad,
    );
  }
});

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

Deno.test("loop: cycles start on the interval without drift, never overlapping", async () => {
  const starts: number[] = [];
  let running = 0;
  const stop = new AbortController();
  await runLoop(
    async () => {
      assert.equal(running++, 0, "two cycles at once");
      starts.push(performance.now());
      // Cycles take half the interval; the third overruns it, and the next
      // starts right after it.
      await new Promise((resolve) => setTimeout(resolve, starts.length === 3 ? 450 : 150));
      running--;
      if (starts.length === 6) stop.abort();
    },
    300,
    stop.signal,
  );
  const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
  assert.equal(starts.length, 6);
  // Timing the interval from a cycle's end would make the gaps 450 ms (750 after
  // the overrun); the slack below is for timers that fire late on a busy machine.
  for (const [i, gap] of gaps.entries()) {
    const expected = i === 2 ? 450 : 300;
    assert.ok(gap >= expected - 5 && gap < expected + 140, `gap ${i}: ${gap} ms`);
  }
});

Deno.test("loop: an abort during the wait ends the loop at once", async () => {
  const stop = new AbortController();
  let cycles = 0;
  const started = performance.now();
  setTimeout(() => stop.abort(), 50);
  await runLoop(() => Promise.resolve(cycles++), 60_000, stop.signal);
  assert.equal(cycles, 1);
  assert.ok(performance.now() - started < 5_000);
});

/**
 * Compare `work/src` with `work/rep` again and again with one index and one
 * hasher, as if both scans had started at `observedAt()`.
 */
function comparer(work: string, observedAt: () => number) {
  const index = new PairIndex(), state = new Hasher();
  const scan = async (root: string) => ({ ...await scanTree(root), startedAt: observedAt() });
  const compare = async () =>
    findChangedFiles(
      { source: `${work}/src`, replica: `${work}/rep` },
      await scan(`${work}/src`),
      await scan(`${work}/rep`),
      index,
      state,
    );
  return { compare, state };
}

Deno.test("hash: an unchanged pair is not read again once its keys have settled", async () => {
  await withWork(async (work) => {
    Deno.mkdirSync(`${work}/rep`);
    for (const side of ["src", "rep"]) Deno.writeTextFileSync(`${work}/${side}/f`, "same bytes");
    const { compare, state } = comparer(work, () => Date.now() + 2_000);
    assert.equal((await compare()).changed.size, 0);
    assert.equal(state.hashedBytes, 20);
    assert.equal((await compare()).changed.size, 0);
    assert.equal(state.hashedBytes, 20, "second comparison read nothing");
    // A later second, so the rewrite's key differs (no racy same-tick write).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    Deno.writeTextFileSync(`${work}/src/f`, "SAME BYTES");
    assert.deepEqual([...(await compare()).changed], ["f"]);
    assert.equal(state.hashedBytes, 30, "only the changed side was read again");
  });
});

Deno.test("hash: keys observed in the second of their ctime are not trusted (racy edits)", async () => {
  await withWork(async (work) => {
    Deno.mkdirSync(`${work}/rep`);
    for (const side of ["src", "rep"]) Deno.writeTextFileSync(`${work}/${side}/f`, "same");
    // Observed within the second of the files' ctime, whenever the test runs.
    const ctimeSecond = Deno.statSync(`${work}/src/f`).ctime!.getTime();
    const { compare, state } = comparer(work, () => ctimeSecond + 500);
    await compare();
    await compare();
    assert.equal(state.hashedBytes, 16, "a fresh file is hashed again until it settles");
  });
});

/** A disk whose `copyFile` fails for paths copied from `failing`. */
function faultyDisk(failing: string, error: Error): Disk {
  return {
    ...realDisk,
    copyFile: (from, to, size) => {
      if (from.endsWith(failing)) {
        Deno.writeTextFileSync(to, "partial"); // a half-written temp file
        throw error;
      }
      return realDisk.copyFile(from, to, size);
    },
  };
}

for (
  const [name, error] of [
    ["EACCES", new Deno.errors.PermissionDenied("Permission denied (os error 13)")],
    ["ENOSPC", new Error("No space left on device (os error 28)")],
  ] as const
) {
  Deno.test(`apply: ${name} on one file fails that file only and leaves no temp file`, async () => {
    await withWork(async (work) => {
      for (const name of ["a", "b", "c"]) Deno.writeTextFileSync(`${work}/src/${name}`, name);
      Deno.mkdirSync(`${work}/rep`);
      const actions = plan((await scanTree(`${work}/src`)).tree, new Map(), { changed: new Set() });
      const outcomes: Outcome[] = await applyPlan(
        actions,
        { source: `${work}/src`, replica: `${work}/rep` },
        { disk: faultyDisk("/b", error) },
      );
      assert.deepEqual(outcomes.map((o) => [o.action.path, o.status]).sort(), [
        ["a", "done"],
        ["b", "failed"],
        ["c", "done"],
      ]);
      assert.deepEqual([...listTree(`${work}/rep`).keys()].sort(), ["a", "c"]);
    });
  });
}

Deno.test("apply: a source file that vanishes before its copy is skipped, not failed", async () => {
  await withWork(async (work) => {
    Deno.writeTextFileSync(`${work}/src/gone`, "x");
    Deno.mkdirSync(`${work}/rep`);
    const actions = plan((await scanTree(`${work}/src`)).tree, new Map(), { changed: new Set() });
    Deno.removeSync(`${work}/src/gone`);
    const [outcome] = await applyPlan(actions, { source: `${work}/src`, replica: `${work}/rep` }, {
      disk: realDisk,
    });
    assert.equal(outcome?.status, "skipped");
    assert.deepEqual([...listTree(`${work}/rep`).keys()], []);
  });
});

Deno.test("apply: a source file changed during its copy is discarded", async () => {
  await withWork(async (work) => {
    Deno.writeTextFileSync(`${work}/src/busy`, "before");
    Deno.mkdirSync(`${work}/rep`);
    const actions = plan((await scanTree(`${work}/src`)).tree, new Map(), { changed: new Set() });
    const disk: Disk = {
      ...realDisk,
      copyFile: (from, to, size) => {
        realDisk.copyFile(from, to, size);
        Deno.writeTextFileSync(from, "after, longer"); // a writer got in
      },
    };
    const [outcome] = await applyPlan(actions, { source: `${work}/src`, replica: `${work}/rep` }, {
      disk,
    });
    assert.equal(outcome?.status, "skipped");
    assert.deepEqual([...listTree(`${work}/rep`).keys()], []);
  });
});

Deno.test("apply: nothing is attempted under a folder that could not be created", async () => {
  await withWork(async (work) => {
    Deno.mkdirSync(`${work}/src/d/e`, { recursive: true });
    Deno.writeTextFileSync(`${work}/src/d/e/f`, "x");
    Deno.mkdirSync(`${work}/rep`);
    const actions = plan((await scanTree(`${work}/src`)).tree, new Map(), { changed: new Set() });
    const disk: Disk = {
      ...realDisk,
      mkdir: () => {
        throw new Deno.errors.PermissionDenied("denied");
      },
    };
    const outcomes = await applyPlan(actions, { source: `${work}/src`, replica: `${work}/rep` }, {
      disk,
    });
    assert.deepEqual(outcomes.map((o) => [o.action.path, o.status]), [["d", "failed"]]);
  });
});

Deno.test("apply: nothing is written through a replica folder that became a symlink", async () => {
  await withWork(async (work) => {
    Deno.mkdirSync(`${work}/src/d`);
    Deno.writeTextFileSync(`${work}/src/d/x`, "source");
    Deno.mkdirSync(`${work}/src/e`);
    Deno.mkdirSync(`${work}/outside`);
    Deno.mkdirSync(`${work}/rep`);
    Deno.mkdirSync(`${work}/rep/e`);
    // The plan was made while rep/d was a real folder; then it was swapped for a link.
    const actions = plan(
      (await scanTree(`${work}/src`)).tree,
      (await scanTree(`${work}/src`)).tree,
      {
        changed: new Set(["d/x"]),
      },
    );
    Deno.symlinkSync(`${work}/outside`, `${work}/rep/d`);
    Deno.removeSync(`${work}/rep/e`);
    Deno.symlinkSync(`${work}/outside`, `${work}/rep/e`);
    Deno.chmodSync(`${work}/outside`, 0o700);
    const outcomes = await applyPlan(
      [...actions, { op: "folder", path: "e", mode: 0o755, mtimeMs: 0, quiet: false }],
      { source: `${work}/src`, replica: `${work}/rep` },
      { disk: realDisk },
    );
    assert.deepEqual(outcomes.map((o) => [o.action.path, o.status]), [
      ["d/x", "failed"],
      ["d", "failed"], // its attributes, after the write into it
      ["e", "failed"],
    ]);
    assert.match(
      String((outcomes[0] as { error: Error }).error),
      /replica folder 'd' is a symlink/,
    );
    assert.match(String((outcomes[1] as { error: Error }).error), /entry is a symlink/);
    assert.deepEqual([...Deno.readDirSync(`${work}/outside`)], []);
    assert.equal(Deno.statSync(`${work}/outside`).mode! & 0o777, 0o700);
  });
});

Deno.test("sync: an unchanged run reads no file content; one changed file is the only one read", async () => {
  await withWork(async (work) => {
    const sizes = [4096, 1000, 3 * 1024 * 1024]; // the last one is read asynchronously
    sizes.forEach((size, i) =>
      Deno.writeFileSync(`${work}/src/f${i}`, new Uint8Array(size).fill(i + 1))
    );
    // Each Mirror is a fresh run (as with --once): only the state file carries over.
    const run = async () => {
      const roots = { source: `${work}/src`, replica: `${work}/rep` };
      const { state } = await MirrorState.open(`${work}/state`, roots);
      try {
        const mirror = mirrorIn(work, realDisk, state);
        await mirror.cycle();
        return mirror.hashedBytes;
      } finally {
        state.close();
      }
    };
    const total = sizes.reduce((a, b) => a + b);
    const settle = () => new Promise((resolve) => setTimeout(resolve, 1100)); // ctimes: seconds
    // Settled sources, so the copies are recorded whenever the test runs.
    await settle();
    assert.equal(await run(), total, "copying reads the source once, for the tree digest");
    assert.equal(await run(), 0, "the mirror's own copies are not read again");
    await settle();
    assert.equal(await run(), 0, "an unchanged run reads nothing");
    assert.deepEqual([...Deno.readDirSync(`${work}/rep`)].map((e) => e.name).sort(), [
      "f0",
      "f1",
      "f2",
    ]);
    const f0 = `${work}/src/f0`;
    const before = Deno.statSync(f0);
    Deno.writeFileSync(f0, new Uint8Array(4096).fill(9));
    Deno.utimeSync(f0, before.atime!, before.mtime!);
    await settle();
    assert.equal(await run(), 4096, "only the changed source file is read");
    assert.deepEqual(Deno.readFileSync(`${work}/rep/f0`), Deno.readFileSync(f0));
  });
});

Deno.test("tree: a packed tree reads back what was set, in order", () => {
  const entry = fc.oneof(
    fc.record({
      kind: fc.constantFrom("file" as const, "dir" as const, "other" as const),
      size: fc.nat(),
      mtimeMs: fc.integer({ min: 0, max: 2 ** 42 }),
      ctimeMs: fc.integer({ min: 0, max: 2 ** 42 }),
      ino: fc.integer({ min: 0, max: 2 ** 52 }),
      mode: fc.integer({ min: 0, max: 0o7777 }),
    }),
    fc.record({
      kind: fc.constant("symlink" as const),
      size: fc.nat(),
      mtimeMs: fc.nat(),
      ctimeMs: fc.nat(),
      ino: fc.nat(),
      mode: fc.constant(0o777),
      target: fc.string(),
    }),
  ).map((entry): Entry => ({ ...entry })); // plain objects, as scans make
  const path = fc.oneof(
    fc.constantFrom("a", "a/b", "é x", "\n"), // often replaced
    fc.string({ unit: "binary", minLength: 1, maxLength: 8 }).filter((p) => !p.includes("\0")),
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(path, entry), { maxLength: 200 }), (sets) => {
      const model = new Map<string, Entry>(), tree = new PackedTree();
      for (const [path, entry] of sets) {
        model.set(path, entry);
        tree.set(path, entry);
      }
      assert.equal(tree.size, model.size);
      assert.deepEqual([...tree], [...model]);
      assert.deepEqual([...tree.keys()], [...model.keys()]);
      for (const [path, entry] of model) assert.deepEqual(tree.get(path), entry);
    }),
    { numRuns: 200 },
  );
});

Deno.test("sync: the tree digest reuses what the comparison read; nothing is read twice", async () => {
  await withWork(async (work) => {
    Deno.mkdirSync(`${work}/rep`);
    Deno.writeFileSync(`${work}/src/f`, new Uint8Array(4096).fill(1));
    Deno.writeFileSync(`${work}/rep/f`, new Uint8Array(4096).fill(2)); // same size, other bytes
    const mirror = mirrorIn(work);
    const tally = await mirror.cycle();
    assert.equal(tally.updated, 1);
    assert.match(tally.digest ?? "", /^[0-9a-f]{32}$/);
    // Both sides once to compare; the digest takes the source's MD5 from that,
    // though the file is too new for the index to keep it.
    assert.equal(mirror.hashedBytes, 2 * 4096);
  });
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

Deno.test("apply: a copy that failed beside another is retried alone", async () => {
  await withWork(async (work) => {
    Deno.writeFileSync(`${work}/src/big`, new Uint8Array(2 << 20));
    for (const name of ["a", "c"]) Deno.writeTextFileSync(`${work}/src/${name}`, name);
    Deno.mkdirSync(`${work}/rep`);
    let bigInFlight = false;
    const disk: Disk = {
      ...realDisk,
      copyFile: (from, to, size) => {
        if (size >= 1 << 20) {
          bigInFlight = true;
          return Deno.copyFile(from, to).finally(() => (bigInFlight = false));
        }
        if (bigInFlight) throw new Error("No space left on device (os error 28)");
        return realDisk.copyFile(from, to, size);
      },
    };
    const actions = plan((await scanTree(`${work}/src`)).tree, new Map(), { changed: new Set() });
    const outcomes = await applyPlan(actions, { source: `${work}/src`, replica: `${work}/rep` }, {
      disk,
    });
    assert.deepEqual(outcomes.map((o) => [o.action.path, o.status]).sort(), [
      ["a", "done"],
      ["big", "done"],
      ["c", "done"],
    ]);
    assertMirrored(`${work}/src`, `${work}/rep`);
  });
});

Deno.test("apply: the copy worker mirrors many small files like the main thread does", async () => {
  await withWork(async (work) => {
    for (let d = 0; d < 3; d++) {
      Deno.mkdirSync(`${work}/src/d${d}`);
      for (let f = 0; f < 300; f++) Deno.writeTextFileSync(`${work}/src/d${d}/f${f}`, `${d}:${f}`);
    }
    for (let f = 0; f < 300; f++) Deno.writeTextFileSync(`${work}/src/top${f}`, `top ${f}`);
    Deno.mkdirSync(`${work}/rep`);
    const actions = plan((await scanTree(`${work}/src`)).tree, new Map(), { changed: new Set() });
    assert.ok(actions.filter((action) => action.op === "copy").length >= MIN_WORKER_COPIES);
    const failures: Error[] = [];
    const outcomes = await applyPlan(actions, { source: `${work}/src`, replica: `${work}/rep` }, {
      disk: realDisk,
      copyWorker: true,
      onWorkerFailure: (error) => failures.push(error),
    });
    assert.deepEqual(failures, [], "the worker itself copied its share");
    assert.equal(outcomes.filter((o) => o.status === "done").length, actions.length);
    assertMirrored(`${work}/src`, `${work}/rep`);
  });
});

Deno.test("sync: a file that vanishes before its copy is one WARNING, not a failure", async () => {
  await withRecords(async (records) => {
    await withWork(async (work) => {
      Deno.writeTextFileSync(`${work}/src/gone.txt`, "soon gone");
      Deno.writeTextFileSync(`${work}/src/kept.txt`, "kept");
      const vanishing: Disk = {
        ...realDisk,
        copyFile: (from, to, size) => {
          if (from.endsWith("/gone.txt")) Deno.removeSync(from); // deleted between scan and copy
          return realDisk.copyFile(from, to, size);
        },
      };
      const mirror = mirrorIn(work, vanishing);
      const tally = await mirror.cycle();
      assert.equal(tally.failed, 0);
      assert.equal(tally.warnings, 1);
      const warnings = records.filter((r) => r.level === "warning");
      assert.equal(warnings.length, 1);
      assert.equal(warnings[0]!.properties.path, "gone.txt");
      assert.ok(!records.some((r) => r.level === "error"));
      assert.deepEqual([...listTree(`${work}/rep`).keys()], ["kept.txt"]);
    });
  });
});

Deno.test("verify: the tree digest of many lines is the MD5 of all of them, sorted", async () => {
  const { createHash } = await import("node:crypto");
  const lines = Array.from({ length: 10_000 }, (_, i) => `file 0644 d${i % 7}/f${i * 7919} x\n`);
  const expected = createHash("md5").update([...lines].sort().join("")).digest("hex");
  assert.equal(treeDigest(lines), expected);
  assert.equal(treeDigest([...lines].reverse()), expected, "order of the input does not matter");
});

Deno.test("apply: a touch vouches for the replica's new key only if it is the file compared", async () => {
  await withWork(async (work) => {
    Deno.writeTextFileSync(`${work}/src/f`, "same");
    Deno.mkdirSync(`${work}/rep`);
    Deno.writeTextFileSync(`${work}/rep/f`, "same");
    Deno.utimeSync(`${work}/rep/f`, 0, 0); // attributes differ, content the same
    const roots = { source: `${work}/src`, replica: `${work}/rep` };
    const touchOf = async () => {
      const actions = plan(
        (await scanTree(roots.source)).tree,
        (await scanTree(roots.replica)).tree,
        {
          changed: new Set(),
        },
      );
      assert.deepEqual(actions.map((a) => a.op), ["touch"]);
      return actions;
    };
    const [untouched] = await applyPlan(await touchOf(), roots, { disk: realDisk });
    assert.ok(untouched?.status === "done" && untouched.replicaKey !== undefined);
    Deno.utimeSync(`${work}/rep/f`, 0, 0);
    const actions = await touchOf();
    Deno.writeTextFileSync(`${work}/rep/f`, "SAME"); // someone else, after the comparison
    const [raced] = await applyPlan(actions, roots, { disk: realDisk });
    assert.ok(raced?.status === "done" && raced.replicaKey === undefined);
  });
});

Deno.test("sync: a copy worker that fails is one WARNING; its copies and later cycles go on without it", async () => {
  await withRecords(async (records) => {
    await withWork(async (work) => {
      const many = (folder: string) => {
        Deno.mkdirSync(`${work}/src/${folder}`);
        for (let i = 0; i < MIN_WORKER_COPIES; i++) {
          Deno.writeTextFileSync(`${work}/src/${folder}/f${i}`, `${i}`);
        }
      };
      let started = 0;
      const roots = { source: `${work}/src`, replica: `${work}/rep` };
      const mirror = new Mirror(roots, realDisk, getLogger(["test"]), {
        makeCopyWorker: () => (started++, new CopyWorker("throw new Error('broken worker')")),
      });
      many("first");
      assert.equal((await mirror.cycle()).failed, 0);
      many("second");
      assert.equal((await mirror.cycle()).failed, 0);
      assertMirrored(roots.source, roots.replica);
      assert.equal(started, 1, "not started again");
      const warnings = records.filter((r) => r.level === "warning");
      assert.equal(warnings.length, 1);
      assert.match(String(warnings[0]!.rawMessage), /The copy worker stopped/);
    });
  });
});

Deno.test("report: the summary says folder/folders, symlink/symlinks, warning/warnings", async () => {
  await withRecords((records) => {
    const one = { ...emptyTally(), copied: 1, created: 1, links: 1, warnings: 1, bytes: 1 };
    const two = { ...emptyTally(), created: 2, links: 2, warnings: 2, bytes: 2 };
    reportSummary(getLogger(["test"]), one, 1);
    reportSummary(getLogger(["test"]), two, 1);
    const text = records.map((r) => r.message.join(""));
    assert.match(
      text[0]!,
      /1 copied, .* 1 folder created, 1 symlink made, 1 warning, 0 failed; 1 byte in/,
    );
    assert.match(text[1]!, /2 folders created, 2 symlinks made, 2 warnings, 0 failed; 2 bytes in/);
  });
});

/**
 * The log file as an operator meets it: a full disk under it, logrotate's
 * SIGHUP. Against the real program on real folders (tmpfs where it can be
 * mounted).
 */
import assert from "node:assert/strict";
import {
  assertMirrored,
  canMount,
  logLines,
  mirrorCommand,
  mirrored,
  mountTmpfs,
  runMirror,
  startLoop,
  succeeds,
  waitFor,
  withWork,
  writeFile,
} from "../helpers.ts";

/** Fill the tmpfs at `dir` but for about `roomBytes`. */
function fillBut(dir: string, roomBytes: number): void {
  const chunk = new Uint8Array(4096);
  using filler = Deno.openSync(`${dir}/filler`, { write: true, create: true });
  try {
    for (;;) filler.writeSync(chunk);
  } catch {
    // full
  }
  filler.truncateSync(Math.max(0, filler.statSync().size - roomBytes));
}

const LOG_DIR = "logs";
const ARGS = [
  "--source",
  "src",
  "--replica",
  "rep",
  "--log-file",
  `${LOG_DIR}/log.txt`,
  "--state-file",
  "state",
];

Deno.test({
  name: "log: a full disk under the log file never stops mirroring; the console keeps every line",
  ignore: !canMount(), // needs `mount -t tmpfs` (root)
  fn: async () => {
    await withWork(async (work) => {
      for (let i = 0; i < 300; i++) writeFile(`${work}/src/f${i}.txt`, `file ${i}`);
      const unmount = mountTmpfs(`${work}/${LOG_DIR}`, "64k");
      try {
        fillBut(`${work}/${LOG_DIR}`, 2048);
        const result = await runMirror([...ARGS, "--once"], work);
        assert.equal(result.code, 0, "a log failure alone does not change the exit code");
        assertMirrored(`${work}/src`, `${work}/rep`);
        const copied = result.stdout.split("\n").filter((line) =>
          line.endsWith("has been copied.")
        );
        assert.equal(copied.length, 300, "the console got every line");
        const stderr = result.stderr.trim().split("\n");
        assert.equal(stderr.length, 1, result.stderr);
        assert.match(
          stderr[0]!,
          /^folder-mirror: cannot write the log file 'logs\/log.txt' \(No space left on device.*\); its lines go to the console only/,
        );
      } finally {
        unmount();
      }
    });
  },
});

Deno.test({
  name: "log: the continuous mode outlives a full log disk and writes the log again when it can",
  ignore: !canMount(), // needs `mount -t tmpfs` (root)
  fn: async () => {
    await withWork(async (work) => {
      writeFile(`${work}/src/first.txt`, "first");
      const unmount = mountTmpfs(`${work}/${LOG_DIR}`, "64k");
      try {
        fillBut(`${work}/${LOG_DIR}`, 0);
        const child = mirrorCommand([...ARGS, "--time-interval", "0.2"], work).spawn();
        const finished = child.output();
        const loop = {
          stop: () => (child.kill("SIGINT"), finished),
        };
        let output: Deno.CommandOutput | undefined;
        try {
          await waitFor("first cycle", mirrored(work));
          for (let i = 0; i < 50; i++) writeFile(`${work}/src/more${i}.txt`, "x".repeat(200));
          await waitFor("more files", mirrored(work));
          Deno.removeSync(`${work}/${LOG_DIR}/filler`);
          writeFile(`${work}/src/later.txt`, "later");
          await waitFor(
            "the log file written again",
            () =>
              logLines(`${work}/${LOG_DIR}/log.txt`).some((l) =>
                l.endsWith("File later.txt has been copied.")
              ),
          );
        } finally {
          output = await loop.stop();
        }
        assert.equal(output.code, 0);
        const stderr = new TextDecoder().decode(output.stderr);
        assert.match(stderr, /cannot write the log file 'logs\/log.txt'/);
        assert.match(stderr, /the log file 'logs\/log.txt' is written again\./);
      } finally {
        unmount();
      }
    });
  },
});

Deno.test("log: SIGHUP reopens the log file (logrotate) and the mirror goes on", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    const loop = startLoop(work, "0.2");
    let output: Deno.CommandOutput | undefined;
    try {
      await waitFor("first cycle", mirrored(work));
      Deno.renameSync(`${work}/log.txt`, `${work}/log.txt.1`); // logrotate's move
      loop.child.kill("SIGHUP");
      await waitFor("the new log file", () => {
        try {
          return logLines(`${work}/log.txt`).some((l) => l.includes("reopened (SIGHUP)"));
        } catch {
          return false;
        }
      });
      writeFile(`${work}/src/b.txt`, "b");
      await waitFor("b.txt", mirrored(work));
      await new Promise((resolve) => setTimeout(resolve, 100)); // lines are written in batches
    } finally {
      output = await loop.stop();
    }
    assert.equal(output.code, 0, "SIGHUP does not end the mirror");
    const now = logLines(`${work}/log.txt`), before = logLines(`${work}/log.txt.1`);
    assert.ok(now.some((l) => l.endsWith("File b.txt has been copied.")), now.join("\n"));
    assert.ok(!before.some((l) => l.includes("b.txt")), "nothing more goes to the moved file");
    assert.ok(before.some((l) => l.endsWith("File a.txt has been copied.")));
    assert.match(now.at(-1)!, /Mirror stopped by SIGINT\.$/);
  });
});

Deno.test("log: --log-file - writes no log file; the console carries the lines, JSON ones with --log-format json", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    const args = [
      "--source",
      "src",
      "--replica",
      "rep",
      "--log-file",
      "-",
      "--state-file",
      "state",
    ];
    const text = await runMirror([...args, "--once"], work);
    assert.equal(text.code, 0, text.stderr);
    assert.equal(text.stderr, "");
    assert.match(
      text.stdout,
      /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[INFO\]: Mirror started \(version [^)]+\): source src, replica rep, no log file, one cycle\.$/m,
    );
    assert.match(
      text.stdout,
      /^[-\d]{10} [:\d]{8},\d{3} \[INFO\]: File a\.txt has been copied\.$/m,
    );
    assert.deepEqual([...Deno.readDirSync(work)].map((entry) => entry.name).sort(), [
      "rep",
      "src",
      "state",
    ]);

    writeFile(`${work}/src/b.txt`, "b");
    assert.ok(succeeds("mkfifo", `${work}/src/pipe`)); // a WARNING: skipped, never opened
    const json = await runMirror([...args, "--once", "--log-format", "json"], work);
    assert.equal(json.code, 0, json.stderr);
    const records = (output: string) => output.trim().split("\n").map((line) => JSON.parse(line));
    const out = records(json.stdout), err = records(json.stderr);
    assert.ok(out.every((record) => record.level === "INFO"), json.stdout);
    assert.ok(
      out.some((record) =>
        record.action === "copy" && record.path === "b.txt" &&
        record.message === "File b.txt has been copied."
      ),
      json.stdout,
    );
    assert.equal(err.length, 1, json.stderr);
    assert.equal(err[0].level, "WARNING");
    assert.equal(err[0].path, "pipe");
    assert.deepEqual([...Deno.readDirSync(work)].map((entry) => entry.name).sort(), [
      "rep",
      "src",
      "state",
    ]);
  });
});

Deno.test("log: --log-file - in the loop: SIGHUP has no file to reopen, the mirror goes on", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    const child = mirrorCommand([
      "--source",
      "src",
      "--replica",
      "rep",
      "--log-file",
      "-",
      "--state-file",
      "state",
      "--time-interval",
      "0.2",
    ], work).spawn();
    const finished = child.output();
    try {
      await waitFor("first cycle", mirrored(work));
      child.kill("SIGHUP");
      writeFile(`${work}/src/b.txt`, "b");
      await waitFor("b.txt", mirrored(work));
    } finally {
      child.kill("SIGINT");
    }
    const output = await finished;
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    const stdout = new TextDecoder().decode(output.stdout);
    assert.match(stdout, /\[INFO\]: File b\.txt has been copied\.\n/);
    assert.doesNotMatch(stdout, /reopened/);
    assert.match(stdout, /\[INFO\]: Mirror stopped by SIGINT\.\n$/);
    assert.deepEqual([...Deno.readDirSync(work)].map((entry) => entry.name).sort(), [
      "rep",
      "src",
      "state",
    ]);
  });
});

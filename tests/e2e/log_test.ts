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

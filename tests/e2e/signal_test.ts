/**
 * SIGINT and SIGTERM stop the program within a second, whatever it is doing
 * (reading files to hash them, a big kernel copy, many small copies), with no
 * temp file left and the stop line logged.
 */
import assert from "node:assert/strict";
import { LocalTree } from "../../lib/backends/local/local.ts";
import { scanTree } from "../../lib/engine/scan.ts";
import {
  copyUnderWay,
  listTree,
  logLines,
  mirrorCommand,
  PAIR,
  waitFor,
  withWork,
} from "../helpers.ts";

/** A file of `bytes` bytes, all `fill`, written in 4 MiB blocks. */
function bigFile(path: string, bytes: number, fill: number): void {
  const block = new Uint8Array(4 << 20).fill(fill);
  using file = Deno.openSync(path, { write: true, create: true });
  for (let written = 0; written < bytes; written += block.length) file.writeSync(block);
}

/**
 * Start `--once` on `work`, wait until `busy()` holds, send `signal`, and
 * check it stopped within a second, cleanly.
 */
async function stopsPromptly(work: string, busy: () => boolean, signal: Deno.Signal) {
  const child = mirrorCommand(
    [...PAIR, "--once"],
    work,
  ).spawn();
  const finished = child.output();
  try {
    await waitFor("the work to be under way", busy, 30_000, 5);
  } catch (error) {
    child.kill("SIGKILL");
    await finished;
    throw error;
  }
  const sent = performance.now();
  child.kill(signal);
  const result = await finished;
  const took = performance.now() - sent;
  assert.ok(took < 1000, `stopped ${took.toFixed(0)} ms after ${signal}`);
  assert.equal(result.code, 0, new TextDecoder().decode(result.stderr));
  const lines = logLines(`${work}/log.txt`);
  assert.match(lines.at(-1)!, new RegExp(`Mirror stopped by ${signal}\\.$`));
  const summary = lines.find((line) => / Cycle (finished|stopped): /.test(line));
  assert.ok(summary?.includes(" Cycle stopped: "), summary);
  const temps = [...listTree(`${work}/rep`).keys()].filter((p) => p.includes(".mirror.tmp."));
  assert.deepEqual(temps, [], "no temp file left");
}

Deno.test("signals: SIGINT while files are read to be compared", async () => {
  await withWork(async (work) => {
    // Same sizes, other bytes: every pair is read on both sides (3 GiB).
    Deno.mkdirSync(`${work}/rep`);
    for (let i = 0; i < 3; i++) {
      bigFile(`${work}/src/f${i}`, 512 << 20, 1);
      bigFile(`${work}/rep/f${i}`, 512 << 20, 2);
    }
    const started = Date.now();
    await stopsPromptly(work, () => Date.now() - started > 1000, "SIGINT");
  }, { tmpfs: "4g" });
});

Deno.test("signals: SIGTERM during a big copy", async () => {
  await withWork(async (work) => {
    bigFile(`${work}/src/big`, 2 * 2 ** 30, 3);
    const copying = copyUnderWay(`${work}/rep`);
    await stopsPromptly(work, () => {
      try {
        return copying();
      } catch {
        return false; // no replica yet, or a temp file renamed meanwhile
      }
    }, "SIGTERM");
    assert.ok(!listTree(`${work}/rep`).has("big"), "no partial file under the final name");
  }, { tmpfs: "5g" });
});

Deno.test("signals: SIGINT during many small copies (worker batches)", async () => {
  await withWork(async (work) => {
    for (let d = 0; d < 40; d++) {
      Deno.mkdirSync(`${work}/src/d${d}`);
      for (let f = 0; f < 1000; f++) Deno.writeTextFileSync(`${work}/src/d${d}/f${f}`, `${d}/${f}`);
    }
    const some = () => {
      try {
        return [...Deno.readDirSync(`${work}/rep`)].length > 2;
      } catch {
        return false;
      }
    };
    await stopsPromptly(work, some, "SIGINT");
  });
});

Deno.test("signals: a long scan hands control back, and stops when asked", async () => {
  await withWork(async (work) => {
    for (let d = 0; d < 200; d++) {
      Deno.mkdirSync(`${work}/src/d${d}`);
      for (let f = 0; f < 50; f++) Deno.symlinkSync("x", `${work}/src/d${d}/l${f}`);
    }
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      const scan = await scanTree(new LocalTree(`${work}/src`));
      assert.equal(scan.tree.size, 200 * 51);
      assert.ok(ticks > 0, "timers ran during the scan");
      const stop = new AbortController();
      setTimeout(() => stop.abort("SIGINT"), 1);
      await assert.rejects(async () => {
        for (let i = 0; i < 100; i++) {
          await scanTree(new LocalTree(`${work}/src`), { signal: stop.signal });
        }
      });
    } finally {
      clearInterval(timer);
    }
  });
});

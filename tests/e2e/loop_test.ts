import assert from "node:assert/strict";
import {
  afterCtimeSecond,
  assertMirrored,
  editKeepingMtime,
  listTree,
  logHas,
  logLines,
  mirrorCommand,
  mirrored,
  PAIR,
  runOnce,
  waitFor,
  withWork,
} from "../helpers.ts";

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.test(`loop: keeps mirroring every interval, then stops cleanly on ${signal}`, async () => {
    await withWork(async (work) => {
      const src = `${work}/src`, rep = `${work}/rep`;
      Deno.writeTextFileSync(`${src}/a.txt`, "one");
      Deno.writeTextFileSync(`${src}/same.txt`, "1234");
      Deno.writeTextFileSync(`${src}/tamper.txt`, "abcd");
      const child = mirrorCommand(
        [...PAIR, "--time-interval", "0.3"],
        work,
      ).spawn();
      const finished = child.output();
      try {
        await waitFor("first cycle", mirrored(work));
        // A new file, then same-size edits with the mtime restored, on both sides.
        Deno.writeTextFileSync(`${src}/b.txt`, "two");
        await waitFor("b.txt", logHas(work, "File b.txt has been copied."));
        editKeepingMtime(`${src}/same.txt`, "5678");
        await waitFor("same.txt", logHas(work, "File same.txt has been updated."));
        // In a later second than the mirror's own write of it: an edit in the same
        // second that keeps size and mtime is the documented gap (README, the state file).
        await afterCtimeSecond(`${rep}/tamper.txt`);
        editKeepingMtime(`${rep}/tamper.txt`, "ABCD");
        await waitFor("tamper.txt", logHas(work, "File tamper.txt has been updated."));
        // Later cycles settle again (the edits were mirrored, nothing else happens).
        await waitFor("convergence", mirrored(work));
        child.kill(signal);
        const result = await finished;
        assert.equal(result.code, 0, new TextDecoder().decode(result.stderr));
      } finally {
        try {
          child.kill("SIGKILL");
        } catch {
          // already exited
        }
        await finished;
      }
      const lines = logLines(`${work}/log.txt`);
      assert.match(lines.at(-1)!, new RegExp(`\\[INFO\\]: Mirror stopped by ${signal}\\.$`));
      assert.ok(![...listTree(rep).keys()].some((path) => path.includes(".mirror.tmp.")));
      assertMirrored(src, rep);
    });
  });
}

Deno.test("loop: idle cycles log nothing; a new file is picked up by the next cycle", async () => {
  await withWork(async (work) => {
    Deno.writeTextFileSync(`${work}/src/a.txt`, "one");
    const child = mirrorCommand(
      [...PAIR, "--time-interval", "0.2"],
      work,
    ).spawn();
    const finished = child.output();
    await waitFor("first cycle", logHas(work, "File a.txt has been copied."));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    // New files show up within one interval of each other.
    const started = Date.now();
    Deno.writeTextFileSync(`${work}/src/b.txt`, "two");
    await waitFor("b.txt", logHas(work, "File b.txt has been copied."), 5_000);
    assert.ok(Date.now() - started < 2_000, "mirrored within the interval");
    child.kill("SIGINT");
    assert.equal((await finished).code, 0);
    const messages = logLines(`${work}/log.txt`).map((line) => line.split("]: ")[1]);
    // Start, replica created, first copy + summary, b.txt + summary, stop: idle cycles log nothing.
    assert.equal(messages.filter((m) => m?.startsWith("Cycle finished")).length, 2);
    assert.equal(messages.length, 7, messages.join("\n"));
  });
});

Deno.test("loop: an interval beyond the timer limit (~24.8 days) waits quietly and stops on SIGINT", async () => {
  await withWork(async (work) => {
    Deno.writeTextFileSync(`${work}/src/a.txt`, "a");
    const child = mirrorCommand([...PAIR, "--time-interval", "3000000"], work).spawn();
    const finished = child.output();
    await waitFor("first cycle", mirrored(work));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    Deno.writeTextFileSync(`${work}/src/b.txt`, "b"); // no early cycle may pick this up
    await new Promise((resolve) => setTimeout(resolve, 500));
    const stopped = performance.now();
    child.kill("SIGINT");
    const result = await finished;
    assert.ok(performance.now() - stopped < 2000, "stopped at once");
    assert.equal(result.code, 0);
    assert.equal(new TextDecoder().decode(result.stderr), "", "no timer warnings");
    assert.ok(!listTree(`${work}/rep`).has("b.txt"), "the timer did not fire early");
    assert.match(logLines(`${work}/log.txt`).at(-1)!, /Mirror stopped by SIGINT\.$/);
  });
});

Deno.test("a run that finds the replica up to date says so, with the tree digest (its first cycle's summary)", async () => {
  await withWork(async (work) => {
    Deno.writeTextFileSync(`${work}/src/a.txt`, "one");
    const summaries = () =>
      logLines(`${work}/log.txt`).filter((line) => line.includes("Cycle finished"));
    assert.equal((await runOnce(work)).code, 0);
    const digest = summaries()[0]?.match(/source tree digest ([0-9a-f]{32})/)?.[1];
    assert.ok(digest, summaries().join("\n"));
    // Nothing to do: the next run's first (and only) cycle still ends with a summary.
    const again = await runOnce(work);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /Cycle finished: 0 copied, 0 updated, 0 linked, 0 removed/);
    assert.equal(summaries().length, 2);
    assert.ok(summaries()[1]!.endsWith(`source tree digest ${digest}.`), summaries()[1]);
  });
});

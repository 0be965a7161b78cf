import assert from "node:assert/strict";
import { runLoop } from "../../lib/engine/loop.ts";

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

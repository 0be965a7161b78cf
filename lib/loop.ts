/**
 * The interval timer: the first cycle starts at once; each next one starts
 * `intervalMs` after the previous one started, or right after it when it ran
 * longer. Never two cycles at once.
 *
 * @module
 */

/**
 * Run `cycle` repeatedly until `signal` aborts. Resolves after the cycle in
 * progress (if any) has returned.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runLoop } from "./loop.ts";
 * const stop = new AbortController();
 * let cycles = 0;
 * await runLoop(() => {
 *   if (++cycles === 3) stop.abort();
 *   return Promise.resolve();
 * }, 1, stop.signal);
 * assert.ok(cycles === 3);
 * ```
 */
export async function runLoop(
  cycle: (signal: AbortSignal) => Promise<unknown>,
  intervalMs: number,
  signal: AbortSignal,
): Promise<void> {
  while (!signal.aborted) {
    const started = performance.now();
    await cycle(signal);
    await sleep(started + intervalMs - performance.now(), signal);
  }
}

/** Wait `ms` (nothing when `ms <= 0`), or until `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

/**
 * The scheduler: the first full cycle starts at once; each next one starts
 * `intervalMs` after the previous one started, or right after it when it ran
 * longer. In between, paths named by file-system events ({@link HintSource}) get a
 * quick partial cycle, and a full cycle at once when they ask for one (events
 * may have been lost). Never two cycles of any kind at once.
 *
 * @module
 */

/** Paths waiting for a partial cycle (the watch mode's `Hints`). */
export interface HintSource {
  /** Paths waiting. */
  readonly size: number;
  /** A full cycle is wanted now (events may have been lost). */
  readonly full?: boolean;
  /** Return the waiting paths and start a new batch. */
  take(): ReadonlySet<string>;
  /** Call `wake` once, when paths are next added. */
  onAdd(wake: () => void): void;
}

/** Partial cycles for hinted paths, next to the periodic full cycles. */
export interface HintedCycles {
  readonly hints: HintSource;
  readonly cycle: (paths: ReadonlySet<string>, signal: AbortSignal) => Promise<unknown>;
}

/**
 * Run `cycle` repeatedly until `signal` aborts, and `hinted.cycle` for hinted
 * paths in between. Resolves after the cycle in progress (if any) has returned.
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
 * assert.equal(cycles, 3);
 * ```
 */
export async function runLoop(
  cycle: (signal: AbortSignal) => Promise<unknown>,
  intervalMs: number,
  signal: AbortSignal,
  hinted?: HintedCycles,
): Promise<void> {
  let nextFull = performance.now();
  while (!signal.aborted) {
    const now = performance.now();
    if (now >= nextFull || hinted?.hints.full) {
      hinted?.hints.take(); // a full cycle looks at everything that happened before it
      nextFull = now + intervalMs;
      await cycle(signal);
    } else if (hinted && hinted.hints.size > 0) {
      await hinted.cycle(hinted.hints.take(), signal);
    } else {
      await sleep(nextFull - now, signal, hinted?.hints);
    }
  }
}

/** The longest delay a timer takes (~24.8 days; a longer one wraps round and fires at
 * once); longer waits are made of several. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Wait `ms` (at most {@link MAX_TIMER_MS}: the caller waits again), or until
 * `signal` aborts, or until `hints` gets paths. */
function sleep(ms: number, signal: AbortSignal, hints?: HintSource): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.min(ms, MAX_TIMER_MS));
    signal.addEventListener("abort", done);
    hints?.onAdd(done);
  });
}

/**
 * The scheduler: the first full cycle starts at once; each next one starts
 * `intervalMs` after the previous one started, or right after it when it ran
 * longer. In between, paths named by file-system events ({@link Hints}) get a
 * quick partial cycle. Never two cycles of any kind at once.
 *
 * @module
 */

/** Paths waiting for a partial cycle, filled by the watcher. */
export class Hints {
  #paths = new Set<string>();
  #wake: (() => void) | undefined;

  /** Paths waiting. */
  get size(): number {
    return this.#paths.size;
  }

  /** Add paths (relative to the root) to look at soon. */
  add(paths: Iterable<string>): void {
    const before = this.#paths.size;
    for (const path of paths) this.#paths.add(path);
    if (this.#paths.size === before) return;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Return the waiting paths and start a new batch. */
  take(): ReadonlySet<string> {
    const paths = this.#paths;
    this.#paths = new Set();
    return paths;
  }

  /** Call `wake` once, at the next {@link add}. */
  onAdd(wake: () => void): void {
    this.#wake = wake;
  }
}

/** Partial cycles for hinted paths, next to the periodic full cycles. */
export interface HintedCycles {
  readonly hints: Hints;
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
    if (now >= nextFull) {
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

/** The longest delay a timer takes (~24.8 days); longer waits are made of several. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Wait `ms` (at most {@link MAX_TIMER_MS}: the caller waits again), or until
 * `signal` aborts, or until `hints` gets paths. */
function sleep(ms: number, signal: AbortSignal, hints?: Hints): Promise<void> {
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

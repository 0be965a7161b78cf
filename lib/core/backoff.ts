/**
 * Files that keep changing while they are copied (rewritten in place again
 * and again): each is tried again after a pause that doubles with every
 * failure, rather than read and thrown away every cycle, and forgotten once a
 * copy of it succeeds.
 *
 * @module
 */

/** Options of {@link Backoff}. */
export interface BackoffOptions {
  /**
   * The pause after the first failure (ms).
   *
   * @default {1000}
   */
  readonly firstMs?: number;
  /**
   * The longest pause (ms).
   *
   * @default one hour
   */
  readonly maxMs?: number;
  /**
   * The clock (epoch ms).
   *
   * @default `Date.now`
   */
  readonly now?: () => number;
}

/**
 * The pauses of paths that failed; see the module documentation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Backoff } from "./backoff.ts";
 * let now = 0;
 * const backoff = new Backoff({ firstMs: 1000, now: () => now });
 * assert.equal(backoff.failed("log"), 1000);
 * assert.ok(backoff.waiting("log"));
 * now = 1000;
 * assert.ok(!backoff.waiting("log"));
 * assert.equal(backoff.failed("log"), 2000); // it failed again: twice as long
 * backoff.succeeded("log");
 * assert.equal(backoff.failed("log"), 1000);
 * ```
 */
export class Backoff {
  readonly #firstMs: number;
  readonly #maxMs: number;
  readonly #now: () => number;
  readonly #paths = new Map<string, { failures: number; until: number }>();

  /** @param options see {@link BackoffOptions}. */
  constructor(options: BackoffOptions = {}) {
    this.#firstMs = options.firstMs ?? 1000;
    this.#maxMs = options.maxMs ?? 3_600_000;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Whether `path` is paused now.
   *
   * @param path the path.
   * @returns true while its pause lasts.
   */
  waiting(path: string): boolean {
    const paused = this.#paths.get(path);
    return paused !== undefined && this.#now() < paused.until;
  }

  /**
   * `path` failed again: its pause starts now.
   *
   * @param path the path.
   * @returns the pause (ms).
   */
  failed(path: string): number {
    const failures = (this.#paths.get(path)?.failures ?? 0) + 1;
    const pause = Math.min(this.#maxMs, this.#firstMs * 2 ** (failures - 1));
    this.#paths.set(path, { failures, until: this.#now() + pause });
    return pause;
  }

  /**
   * `path` succeeded: forgotten.
   *
   * @param path the path.
   */
  succeeded(path: string): void {
    this.#paths.delete(path);
  }
}

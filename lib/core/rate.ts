/**
 * `--bwlimit`: one {@link TokenBucket} for a whole run, which every write of
 * file content to the replica asks for its bytes before it sends them,
 * whatever the replica (a folder, a bucket, an SSH host) and however many
 * writes run at once.
 *
 * Written here rather than taken from npm: `limiter` (the well-kept one, 4.x)
 * reads `performance.now` and `setTimeout` itself (no clock to inject for
 * exact tests), cannot stop a wait (a stopped run would still hold its place
 * in the queue), and refuses a request bigger than its bucket.
 *
 * @module
 */

/** A limit on the bytes written per second, shared by every writer of a run. */
export interface Rate {
  /** Bytes a writer sends at most after one {@link take}: the size of its pieces. */
  readonly chunk: number;
  /**
   * Wait until `bytes` more may be sent (a big request waits piece by piece,
   * so that other writers take their turns in between).
   *
   * @param bytes the bytes about to be sent.
   * @param signal stops the wait (it then rejects, and the bytes not granted are given back).
   * @returns once they may be sent.
   */
  take(bytes: number, signal?: AbortSignal): Promise<void>;
}

/** The time, as a {@link TokenBucket} reads it and waits for it. */
export interface Clock {
  /** Now, in milliseconds (any origin, never going back). */
  now(): number;
  /**
   * Resolve after `ms` milliseconds; reject at once when `signal` aborts.
   *
   * @param ms how long.
   * @param signal stops the wait.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The real clock: `performance.now` and timers. */
export const realClock: Clock = {
  now: () => performance.now(),
  // node:timers is loaded when first needed (it costs every start of the program otherwise).
  sleep: async (ms, signal) => {
    const { setTimeout: delay } = await import("node:timers/promises");
    await delay(ms, undefined, signal ? { signal } : {});
  },
};

/** Pieces are at least this big (a file system's or a protocol's useful write). */
const MIN_CHUNK = 16 << 10;
/** Pieces are at most this big (what one read of a copy takes). */
const MAX_CHUNK = 1 << 20;

/** Options of {@link TokenBucket}. */
export interface TokenBucketOptions {
  /**
   * Bytes that may go at once after a pause (the bucket's size).
   *
   * @default the larger of {@link TokenBucket.chunk} and a tenth of a second's worth
   */
  readonly burst?: number;
  /**
   * The clock.
   *
   * @default {realClock}
   */
  readonly clock?: Clock;
}

/**
 * A token bucket: bytes flow at `bytesPerSecond`, and up to its burst may go
 * at once after a pause. Takers are served in the order they ask: a take
 * reserves its bytes at once (the bucket may go into debt) and waits until
 * the debt is paid.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TokenBucket } from "./rate.ts";
 * let now = 0;
 * const slept: number[] = [];
 * const clock = {
 *   now: () => now,
 *   sleep: (ms: number) => (slept.push(ms), now += ms, Promise.resolve()),
 * };
 * const bucket = new TokenBucket(1000, { burst: 100, clock });
 * await bucket.take(100); // the burst: at once
 * await bucket.take(500); // then 1,000 bytes a second
 * assert.deepEqual(slept, [100, 100, 100, 100, 100]);
 * ```
 */
export class TokenBucket implements Rate {
  /** The rate. */
  readonly bytesPerSecond: number;
  /** Bytes a writer sends at most after one take: a tenth of a second's worth, 16 KiB to 1 MiB. */
  readonly chunk: number;
  /** The bucket's size. */
  readonly burst: number;
  readonly #clock: Clock;
  /** Bytes that may go now (negative: reserved by takers that wait). */
  #tokens: number;
  /** When {@link #tokens} was last brought up to date. */
  #at: number;

  /**
   * A full bucket.
   *
   * @param bytesPerSecond the rate (more than 0).
   * @param options see {@link TokenBucketOptions}.
   */
  constructor(bytesPerSecond: number, options: TokenBucketOptions = {}) {
    if (!(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond)) {
      throw new RangeError(`not a rate: ${bytesPerSecond}`);
    }
    this.bytesPerSecond = bytesPerSecond;
    const tenth = bytesPerSecond / 10;
    this.chunk = Math.round(Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, tenth)));
    this.burst = options.burst ?? Math.max(this.chunk, tenth);
    this.#clock = options.clock ?? realClock;
    this.#tokens = this.burst;
    this.#at = this.#clock.now();
  }

  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    for (let left = bytes; left > 0;) {
      const piece = Math.min(left, this.burst);
      await this.#takePiece(piece, signal);
      left -= piece;
    }
  }

  /** Reserve `bytes` (at most the burst) and wait until they are paid for. */
  async #takePiece(bytes: number, signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    this.#refill();
    this.#tokens -= bytes;
    if (this.#tokens >= 0) return;
    try {
      await this.#clock.sleep(-this.#tokens / this.bytesPerSecond * 1000, signal);
    } catch (error) {
      // Not sent: the bytes are given back (those reserved after them still wait their turn).
      this.#refill();
      this.#tokens = Math.min(this.burst, this.#tokens + bytes);
      throw error;
    }
  }

  #refill(): void {
    const now = this.#clock.now();
    const earned = Math.max(0, now - this.#at) / 1000 * this.bytesPerSecond;
    this.#tokens = Math.min(this.burst, this.#tokens + earned);
    this.#at = now;
  }
}

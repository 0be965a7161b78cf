/**
 * The `--bwlimit` token bucket (`lib/core/rate.ts`) on a clock the test moves.
 */
import assert from "node:assert/strict";
import { type Clock, realClock, TokenBucket } from "../../lib/core/rate.ts";

/** A clock that stands still until {@link advance}d; sleepers wake in time order. */
class FakeClock implements Clock {
  time = 0;
  #sleepers: { until: number; wake: () => void }[] = [];

  now(): number {
    return this.time;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const sleeper = { until: this.time + ms, wake: resolve };
      this.#sleepers.push(sleeper);
      signal?.addEventListener("abort", () => {
        this.#sleepers = this.#sleepers.filter((s) => s !== sleeper);
        reject(signal.reason);
      }, { once: true });
    });
  }

  /** Move to `to` (ms), waking each sleeper at its time and letting it run on. */
  async advance(to: number): Promise<void> {
    for (;;) {
      await settle();
      const next = this.#sleepers.filter((s) => s.until <= to)
        .sort((a, b) => a.until - b.until)[0];
      if (next === undefined) break;
      this.#sleepers = this.#sleepers.filter((s) => s !== next);
      this.time = Math.max(this.time, next.until);
      next.wake();
    }
    this.time = to;
    await settle();
  }
}

/** Let promise chains run (a macrotask turn). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

/** When (on `clock`) each of `takes` resolved, by its name. */
function timed(clock: FakeClock, takes: Record<string, Promise<void>>): Map<string, number> {
  const done = new Map<string, number>();
  for (const [name, take] of Object.entries(takes)) {
    take.then(() => done.set(name, clock.now()), () => done.set(name, -1));
  }
  return done;
}

Deno.test("rate: the burst goes at once, then bytes flow at the rate", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket(1000, { burst: 100, clock });
  const done = timed(clock, { burst: bucket.take(100) });
  await clock.advance(0);
  assert.equal(done.get("burst"), 0);
  const later = timed(clock, { second: bucket.take(1000) });
  await clock.advance(999);
  assert.equal(later.get("second"), undefined);
  await clock.advance(1000);
  assert.equal(later.get("second"), 1000);
  // Idle for a long time: no more than the burst is saved up.
  await clock.advance(60_000);
  const idle = timed(clock, { a: bucket.take(100), b: bucket.take(100) });
  await clock.advance(60_100);
  assert.deepEqual([...idle], [["a", 60_000], ["b", 60_100]]);
});

Deno.test("rate: the default burst and piece are a tenth of a second's worth, within bounds", () => {
  const mib = new TokenBucket(1 << 20);
  assert.equal(mib.chunk, 104_858);
  assert.equal(mib.burst, 104_858);
  const slow = new TokenBucket(100 << 10); // 10 KiB a tenth: pieces are 16 KiB at least
  assert.equal(slow.chunk, 16 << 10);
  assert.equal(slow.burst, 16 << 10);
  const fast = new TokenBucket(100 << 20); // pieces are 1 MiB at most; the burst still a tenth
  assert.equal(fast.chunk, 1 << 20);
  assert.equal(fast.burst, 10 << 20);
  assert.throws(() => new TokenBucket(0), RangeError);
  assert.throws(() => new TokenBucket(Infinity), RangeError);
});

Deno.test("rate: concurrent takers share it, served in the order they asked", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket(1000, { burst: 100, clock });
  const takes: Record<string, Promise<void>> = {};
  for (let i = 0; i < 10; i++) takes[`t${i}`] = bucket.take(100);
  const done = timed(clock, takes);
  await clock.advance(2000);
  assert.deepEqual(
    [...done],
    Array.from({ length: 10 }, (_, i) => [`t${i}`, i * 100]),
  );
  // Never more than the burst plus what the rate earned: 100 + t bytes by t ms.
  for (const [name, at] of done) assert.ok((Number(name.slice(1)) + 1) * 100 <= 100 + at);
});

Deno.test("rate: a huge take waits piece by piece, others served in between", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket(1000, { burst: 100, clock });
  const huge = timed(clock, { huge: bucket.take(10_000) });
  await clock.advance(250);
  const small = timed(clock, { small: bucket.take(100) });
  await clock.advance(20_000);
  // The small one waited only for the piece reserved before it, not for the whole.
  assert.equal(small.get("small"), 400);
  // 10,100 bytes, 100 at once: 10 s.
  assert.equal(huge.get("huge"), 10_000);
});

Deno.test("rate: a stop ends a wait at once and gives its bytes back", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket(1000, { burst: 100, clock });
  await bucket.take(100);
  const stop = new AbortController();
  const waiting = bucket.take(500, stop.signal);
  const outcome = waiting.then(() => "granted", (error) => error);
  await clock.advance(50);
  stop.abort(new Error("stopped"));
  assert.equal((await outcome).message, "stopped");
  assert.equal(clock.now(), 50);
  // The 100 bytes reserved and not sent were given back: 50 were there, 50 to wait.
  const next = timed(clock, { next: bucket.take(100) });
  await clock.advance(100);
  assert.equal(next.get("next"), 100);
  // Stopped already: not even the burst is taken.
  await clock.advance(1000);
  await assert.rejects(bucket.take(10, stop.signal), /stopped/);
  const full = timed(clock, { full: bucket.take(100) });
  await clock.advance(1000);
  assert.equal(full.get("full"), 1000);
});

Deno.test("rate: the real clock's sleep ends at once when stopped", async () => {
  const stop = new AbortController();
  const started = performance.now();
  const sleeping = realClock.sleep(10_000, stop.signal);
  setTimeout(() => stop.abort(), 10);
  await assert.rejects(sleeping);
  assert.ok(performance.now() - started < 1000);
  await realClock.sleep(1); // and resolves when not
});

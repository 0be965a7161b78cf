/**
 * How file writes are scheduled against a replica: big files several at a
 * time in the background, small ones in batches (which the replica may share
 * with a second thread, or send as requests in flight), and a write that
 * failed beside others tried once more, alone (two big files filling a disk
 * that holds either). Nothing here knows what the replica is.
 *
 * @module
 */
import { asError } from "../core/error.ts";
import { BIG_FILE, type FileWrite, type Replica, type WriteResult } from "../core/replica.ts";

/** Options of {@link CopyScheduler}. */
export interface SchedulerOptions {
  /**
   * Files at least this big are written in the background.
   *
   * @default {BIG_FILE}
   */
  readonly bigFile?: number;
  /**
   * Big files written at once.
   *
   * @default {4}
   */
  readonly parallel?: number;
  /**
   * Send small files in batches ({@link Replica.writeFiles}): always, never,
   * or (`"auto"`) once {@link MIN_BATCHED_WRITES} small files were submitted.
   *
   * @default {false}
   */
  readonly batches?: boolean | "auto";
  /**
   * When it aborts, writes under way stop (the replica removes their files)
   * and queued ones never start.
   *
   * @default never
   */
  readonly signal?: AbortSignal;
}

/** Small files queued before they are written as one batch. */
const MAX_BATCH = 256;
/**
 * A plan with fewer small copies than this is not worth batches (on a local
 * folder, the worker thread costs ~20 ms to start, more than it saves on a few
 * hundred files: 200 copies took 59 ms with it, 42 ms without).
 */
export const MIN_BATCHED_WRITES = 1000;

/** One write with where its result goes; `group` is what it belongs to (a folder being filled). */
interface Pending<G> {
  readonly write: FileWrite;
  readonly group: G;
  readonly done: (result: WriteResult) => void;
}

/**
 * Schedules the file writes of one plan; see the module documentation.
 * Results reach each write's `done`, except failures, which wait for
 * {@link CopyScheduler.retryFailed} of their group.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CopyScheduler } from "./copy_scheduler.ts";
 * import { LocalReplica } from "../backends/local/local.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/a`, "a");
 * const replica = new LocalReplica(`${dir}/rep`);
 * await replica.makeRoot();
 * const scheduler = new CopyScheduler(replica);
 * const results: string[] = [];
 * const from = Deno.lstatSync(`${dir}/a`);
 * const key = `1:${from.mtime!.getTime()}:${from.ctime!.getTime()}:${from.ino}`;
 * await scheduler.submit(
 *   { path: "a", from: `${dir}/a`, size: 1, mtimeMs: from.mtime!.getTime(), mode: 0o644, expectedKey: key },
 *   undefined,
 *   (result) => results.push(result.status),
 * );
 * await scheduler.drain();
 * assert.deepEqual(results, ["done"]);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class CopyScheduler<G = unknown> {
  readonly #replica: Replica;
  readonly #bigFile: number;
  readonly #parallel: number;
  /** Whether small files go in batches now; `"auto"`: from the {@link MIN_BATCHED_WRITES}th on. */
  #batches: boolean | "auto";
  #smallFiles = 0;
  readonly #signal: AbortSignal | undefined;
  /** Big writes under way. */
  readonly #running = new Set<Promise<void>>();
  #queued: Pending<G>[] = [];
  /** Batches being sent (a batched replica: one fills while another is sent). */
  readonly #sending = new Set<Promise<void>>();
  #failed: Pending<G>[] = [];

  /**
   * @param replica where the files are written.
   * @param options see {@link SchedulerOptions}.
   */
  constructor(replica: Replica, options: SchedulerOptions = {}) {
    this.#replica = replica;
    this.#bigFile = options.bigFile ?? BIG_FILE;
    this.#parallel = options.parallel ?? 4;
    const batches = options.batches ?? false;
    this.#batches = replica.writeFiles === undefined
      ? false
      : batches === "auto" && replica.batched
      ? true
      : batches;
    this.#signal = options.signal;
  }

  /**
   * Write `write` (belonging to `group`); `done` gets its result. Resolves
   * once it is accepted: when enough big writes are under way, after one ends.
   */
  async submit(write: FileWrite, group: G, done: (result: WriteResult) => void): Promise<void> {
    const pending = { write, group, done };
    if (write.size >= this.#bigFile) {
      const running: Promise<void> = this.#writeOne(write)
        .then((result) => this.#settle(pending, result))
        .finally(() => this.#running.delete(running));
      this.#running.add(running);
      if (this.#running.size >= this.#parallel) await Promise.race(this.#running);
    } else if (this.#batched()) {
      this.#queued.push(pending);
      if (this.#queued.length < MAX_BATCH) return;
      if (!this.#replica.batched) return await this.#flush();
      // A replica that keeps requests in flight: the next batch fills while this one is sent.
      const sending: Promise<void> = this.#flush().finally(() => this.#sending.delete(sending));
      this.#sending.add(sending);
      if (this.#sending.size >= 2) await Promise.race(this.#sending);
    } else {
      this.#settle(pending, await this.#writeOne(write));
    }
  }

  /** Write one file; a write that throws ends as failed. */
  async #writeOne(write: FileWrite): Promise<WriteResult> {
    try {
      return await this.#replica.writeFile(write, this.#signal);
    } catch (error) {
      const { name, message } = asError(error);
      return { status: "failed", name, message };
    }
  }

  /** Whether this small file goes in a batch. */
  #batched(): boolean {
    if (this.#batches === "auto" && ++this.#smallFiles >= MIN_BATCHED_WRITES) this.#batches = true;
    return this.#batches === true;
  }

  /** Wait for every write submitted (a failure waits for {@link retryFailed}). */
  async drain(): Promise<void> {
    if (this.#signal?.aborted) this.#queued = []; // stopped: nothing new starts
    await this.#flush();
    while (this.#sending.size > 0) await Promise.race(this.#sending);
    while (this.#running.size > 0) await Promise.race(this.#running);
  }

  /** Try the failed writes of `group` once more, one at a time; their results go to `done`. */
  async retryFailed(group: G): Promise<void> {
    const retry = this.#failed.filter((pending) => pending.group === group);
    this.#failed = this.#failed.filter((pending) => pending.group !== group);
    for (const { write, done } of retry) {
      if (this.#signal?.aborted) return;
      done(await this.#writeOne(write));
    }
  }

  /** Write the queued small files as one batch. */
  async #flush(): Promise<void> {
    const batch = this.#queued;
    if (batch.length === 0) return;
    this.#queued = [];
    let results: readonly WriteResult[];
    try {
      results = await this.#replica.writeFiles!(batch.map((pending) => pending.write));
    } catch {
      // The batch could not be sent at all: the files are written one by one.
      const alone: WriteResult[] = [];
      for (const { write } of batch) alone.push(await this.#writeOne(write));
      results = alone;
    }
    batch.forEach((pending, i) => this.#settle(pending, results[i]!));
  }

  /** A result, except a failure: writes run side by side, and one may fail
   * only because of another; failures are retried alone. */
  #settle(pending: Pending<G>, result: WriteResult): void {
    if (result.status === "failed") this.#failed.push(pending);
    else pending.done(result);
  }
}

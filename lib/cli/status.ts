/**
 * `--status-file` and `--metrics-file`: what a monitor can read of a running
 * mirror. {@link RunStatus} keeps the numbers (fed by the cycles and by the
 * log's ERROR records); {@link StatusFiles} writes them, as a JSON document
 * ({@link StatusDocument}) and in Prometheus' text format (`metrics.ts`),
 * after each cycle and every {@link UPDATE_MS} during a long one, each file
 * replaced through `PATH.tmp` and a rename, so a reader never sees half of
 * one. A file that cannot be written is one WARNING (and a line when it is
 * written again); the mirror goes on.
 *
 * @module
 */
import { asError, reason } from "../core/error.ts";
import type { CopyObserver, CycleResult } from "../engine/mirror.ts";
import { type Counts, countsOf, emptyTally, eventful, type MirrorLog } from "../engine/report.ts";
import type { WatchActivity } from "../engine/watch.ts";
import type { ProblemRecord } from "./log.ts";
import { renderMetrics } from "./metrics.ts";

/** The version of the document's layout (a new field keeps it; a changed one does not). */
export const STATUS_FORMAT = 1;

/** The most errors a document lists (the others are counted in `errorsLeftOut`). */
export const MAX_ERRORS = 20;

/** How often the files are written while a cycle runs (ms). */
export const UPDATE_MS = 2000;

/**
 * What the mirror is doing: a cycle is under way (`copying`), it waits for the
 * next one (`idle`), it was told to stop (`stopping`), or its last full cycle
 * did not mirror or held deletions back (`refusing`: a missing or unmounted
 * source, a replica another mirror holds, a deletion guard).
 */
export type RunState = "copying" | "idle" | "stopping" | "refusing";

/** How the mirror runs: one cycle (`--once`), every interval, or also on file-system events. */
export type RunMode = "once" | "loop" | "watch";

/** An ERROR line of a cycle. */
export interface StatusError {
  /** When it was logged (ISO 8601, UTC). */
  readonly time: string;
  /** The log line's message. */
  readonly message: string;
  /** The entry it is about, relative to the roots, where it has one. */
  readonly path?: string;
}

/** A finished full cycle. */
export interface CycleReport {
  /** When it started (ISO 8601, UTC). */
  readonly start: string;
  /** When it ended (ISO 8601, UTC). */
  readonly end: string;
  /** How long it ran. */
  readonly seconds: number;
  /** Nothing failed and it ran to its end (a success). */
  readonly ok: boolean;
  /** Stopped by SIGINT or SIGTERM before its end. */
  readonly stopped?: boolean;
  /** Why it did not mirror or held deletions back (see {@link RunState}). */
  readonly refused?: string;
  /** The source's tree digest, where it was computed. */
  readonly digest?: string;
  /** What it did. */
  readonly counts: Counts;
  /** Its ERROR lines, the first {@link MAX_ERRORS}. */
  readonly errors: readonly StatusError[];
  /** How many more ERROR lines it had. */
  readonly errorsLeftOut: number;
}

/** The cycle under way. */
export interface CurrentCycle {
  /** When it started (ISO 8601, UTC). */
  readonly start: string;
  /** A full cycle, or a partial one of `--watch`. */
  readonly kind: "full" | "partial";
  /** Files copied so far, and files known to copy. */
  readonly files: { readonly done: number; readonly total: number };
  /** Bytes of those files. */
  readonly bytes: { readonly done: number; readonly total: number };
}

/** The status file's content. */
export interface StatusDocument {
  /** {@link STATUS_FORMAT}. */
  readonly format: number;
  /** The program's version. */
  readonly version: string;
  /** The process id. */
  readonly pid: number;
  /** `--source` as given. */
  readonly source: string;
  /** `--replica` as given. */
  readonly replica: string;
  readonly mode: RunMode;
  readonly state: RunState;
  /** When the run started (ISO 8601, UTC). */
  readonly started: string;
  /** When this document was made (ISO 8601, UTC). */
  readonly updated: string;
  /** Cycles ended in this run: full ones, partial ones (`--watch`), full ones that were no success. */
  readonly cycles: { readonly full: number; readonly partial: number; readonly failed: number };
  /** The cycle under way, if any. */
  readonly current: CurrentCycle | null;
  /** The last full cycle that ended. */
  readonly lastCycle: CycleReport | null;
  /** The last full cycle that was a success. */
  readonly lastSuccess: { readonly start: string; readonly end: string } | null;
  /** The counts of every cycle of this run, full and partial, added up. */
  readonly totals: Counts;
  /** With `--watch`: the events seen (see `WatchActivity`). */
  readonly watch?: WatchActivity;
}

/** What does not change during a run. */
export interface RunIdentity {
  readonly version: string;
  readonly pid: number;
  readonly source: string;
  readonly replica: string;
  readonly mode: RunMode;
}

/** A cycle as it runs. */
interface Running {
  readonly start: number;
  readonly kind: "full" | "partial";
  files: number;
  filesDone: number;
  bytes: number;
  bytesDone: number;
  errors: StatusError[];
  errorsLeftOut: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * The numbers of a run, fed as cycles start and end; {@link document} makes
 * the status file's content from them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RunStatus } from "./status.ts";
 * import { emptyTally } from "../engine/report.ts";
 * let now = Date.UTC(2026, 11, 5, 23, 4, 5);
 * const status = new RunStatus(
 *   { version: "0.1.0", pid: 42, source: "src", replica: "rep", mode: "loop" },
 *   () => now,
 * );
 * status.cycleStarted("full");
 * assert.equal(status.document().state, "copying");
 * now += 1500;
 * status.cycleEnded({ ...emptyTally(), copied: 2, bytes: 10 }, false);
 * const doc = status.document();
 * assert.equal(doc.state, "idle");
 * assert.equal(doc.lastCycle?.counts.copied, 2);
 * assert.equal(doc.lastSuccess?.end, "2026-12-05T23:04:06.500Z");
 * ```
 */
export class RunStatus {
  readonly #identity: RunIdentity;
  readonly #now: () => number;
  readonly #started: number;
  #resting: "idle" | "refusing" = "idle";
  #stopping = false;
  #running: Running | undefined;
  #lastCycle: CycleReport | undefined;
  #lastSuccess: { start: string; end: string } | undefined;
  readonly #cycles = { full: 0, partial: 0, failed: 0 };
  #totals: { -readonly [K in keyof Counts]: number } = countsOf(emptyTally());

  /**
   * @param identity what the document says of the run.
   * @param now the clock (epoch ms).
   */
  constructor(identity: RunIdentity, now: () => number = Date.now) {
    this.#identity = identity;
    this.#now = now;
    this.#started = now();
  }

  /** What the mirror is doing now. */
  get state(): RunState {
    return this.#stopping ? "stopping" : this.#running ? "copying" : this.#resting;
  }

  /**
   * A cycle starts.
   *
   * @param kind a full cycle, or a partial one of `--watch`.
   */
  cycleStarted(kind: "full" | "partial"): void {
    this.#running = {
      start: this.#now(),
      kind,
      files: 0,
      filesDone: 0,
      bytes: 0,
      bytesDone: 0,
      errors: [],
      errorsLeftOut: 0,
    };
  }

  /**
   * The cycle under way ended with `result`.
   *
   * @param result what it did.
   * @param stopped it was stopped (SIGINT, SIGTERM) before its end.
   */
  cycleEnded(result: CycleResult, stopped: boolean): void {
    const running = this.#running;
    this.#running = undefined;
    const counts = countsOf(result);
    for (const key of Object.keys(counts) as (keyof Counts)[]) this.#totals[key] += counts[key];
    if (running?.kind !== "full") {
      this.#cycles.partial++;
      return;
    }
    const end = this.#now();
    const ok = !stopped && result.failed === 0;
    this.#cycles.full++;
    if (!ok && !stopped) this.#cycles.failed++;
    this.#lastCycle = {
      start: iso(running.start),
      end: iso(end),
      seconds: (end - running.start) / 1000,
      ok,
      ...(stopped ? { stopped } : {}),
      ...(result.refused === undefined ? {} : { refused: result.refused }),
      ...(result.digest === undefined ? {} : { digest: result.digest }),
      counts,
      errors: running.errors,
      errorsLeftOut: running.errorsLeftOut,
    };
    if (ok) this.#lastSuccess = { start: iso(running.start), end: iso(end) };
    if (!stopped) this.#resting = result.refused === undefined ? "idle" : "refusing";
  }

  /**
   * A log record: an ERROR during a full cycle is one of its errors, and so
   * is a WARNING about an action counted as failed.
   *
   * @param record a WARNING or ERROR record.
   */
  logged(record: ProblemRecord): void {
    const running = this.#running;
    if ((record.level !== "error" && !record.failed) || running?.kind !== "full") return;
    if (running.errors.length >= MAX_ERRORS) {
      running.errorsLeftOut++;
      return;
    }
    running.errors.push({
      time: iso(record.timestamp),
      message: record.message,
      ...(record.path === undefined ? {} : { path: record.path }),
    });
  }

  /** The mirror was told to stop. */
  stopping(): void {
    this.#stopping = true;
  }

  /**
   * An observer of the running cycle's copies, which tells `inner` too.
   *
   * @param inner another observer (a progress bar).
   * @returns the observer to hand to the mirror.
   */
  copies(inner?: CopyObserver): CopyObserver {
    return {
      add: (bytes) => {
        if (this.#running) (this.#running.files++, this.#running.bytes += bytes);
        inner?.add(bytes);
      },
      advance: (bytes) => {
        if (this.#running) (this.#running.filesDone++, this.#running.bytesDone += bytes);
        inner?.advance(bytes);
      },
      known: () => inner?.known(),
      stop: async () => await inner?.stop(),
    };
  }

  /**
   * The status file's content now.
   *
   * @param watch what `--watch` saw, in watch mode.
   * @returns the document.
   */
  document(watch?: WatchActivity): StatusDocument {
    const running = this.#running;
    return {
      format: STATUS_FORMAT,
      ...this.#identity,
      state: this.state,
      started: iso(this.#started),
      updated: iso(this.#now()),
      cycles: { ...this.#cycles },
      current: running === undefined ? null : {
        start: iso(running.start),
        kind: running.kind,
        files: { done: running.filesDone, total: running.files },
        bytes: { done: running.bytesDone, total: running.bytes },
      },
      lastCycle: this.#lastCycle ?? null,
      lastSuccess: this.#lastSuccess ?? null,
      totals: { ...this.#totals },
      ...(watch === undefined ? {} : { watch }),
    };
  }
}

/** Where {@link StatusFiles} writes, and what it reads. */
export interface StatusFilesOptions {
  /** `--status-file`; none: not written. */
  readonly statusFile?: string | undefined;
  /** `--metrics-file`; none: not written. */
  readonly metricsFile?: string | undefined;
  /** Where a file that cannot be written is said. */
  readonly log: MirrorLog;
  /** What `--watch` saw (in watch mode). */
  readonly watch?: () => WatchActivity;
  /**
   * How often the files are written while a cycle runs (ms).
   *
   * @default {UPDATE_MS}
   */
  readonly everyMs?: number;
}

/**
 * Writes a run's {@link RunStatus} to the status and metrics files: when a
 * full cycle starts and ends, after a partial cycle that did something, every
 * {@link UPDATE_MS} while a cycle runs, when told to stop, and at the end.
 * With neither file it only runs the cycles.
 */
export class StatusFiles {
  readonly #status: RunStatus;
  readonly #options: StatusFilesOptions;
  #queue: Promise<void> = Promise.resolve();
  #queued = false;
  readonly #failing = new Set<string>();

  /**
   * @param status the numbers to write.
   * @param options see {@link StatusFilesOptions}.
   */
  constructor(status: RunStatus, options: StatusFilesOptions) {
    this.#status = status;
    this.#options = options;
  }

  /** Whether there is a file to write. */
  get #writes(): boolean {
    return this.#options.statusFile !== undefined || this.#options.metricsFile !== undefined;
  }

  /**
   * Run a full cycle (`kind`), or a partial one, and tell the files.
   *
   * @param kind a full cycle, or a partial one of `--watch`.
   * @param run runs the cycle.
   * @param signal the run's stop signal (a cycle that ends after it was stopped).
   * @returns what the cycle did.
   */
  async cycle(
    kind: "full" | "partial",
    run: () => Promise<CycleResult>,
    signal: AbortSignal,
  ): Promise<CycleResult> {
    this.#status.cycleStarted(kind);
    if (kind === "full") this.update();
    let ticked = false;
    const timer = this.#writes
      ? setInterval(() => {
        ticked = true;
        this.update();
      }, this.#options.everyMs ?? UPDATE_MS)
      : undefined;
    try {
      const result = await run();
      this.#status.cycleEnded(result, signal.aborted);
      if (kind === "full" || ticked || eventful(result)) this.update();
      return result;
    } finally {
      clearInterval(timer);
    }
  }

  /** The mirror was told to stop: said at once. */
  stopping(): void {
    this.#status.stopping();
    this.update();
  }

  /** Write the files (soon: one write at a time, each with the numbers of its moment). */
  update(): void {
    if (!this.#writes || this.#queued) return;
    this.#queued = true;
    this.#queue = this.#queue.then(async () => {
      this.#queued = false;
      await this.#write();
    });
  }

  /** Write the files a last time and wait for every write. */
  async close(): Promise<void> {
    this.update();
    await this.#queue;
  }

  async #write(): Promise<void> {
    const document = this.#status.document(this.#options.watch?.());
    const { statusFile, metricsFile } = this.#options;
    if (statusFile !== undefined) {
      await this.#replace("status", statusFile, () => `${JSON.stringify(document, null, 2)}\n`);
    }
    if (metricsFile !== undefined) {
      await this.#replace("metrics", metricsFile, () => renderMetrics(document));
    }
  }

  /** Replace `path` with `text()` through `path.tmp`; a failure is one WARNING a streak. */
  async #replace(
    what: "status" | "metrics",
    path: string,
    text: () => string | Promise<string>,
  ): Promise<void> {
    try {
      await Deno.writeTextFile(`${path}.tmp`, await text());
      await Deno.rename(`${path}.tmp`, path);
    } catch (error) {
      if (this.#failing.has(path)) return;
      this.#failing.add(path);
      this.#options.log.warn(
        `Could not write the ${what} file {path} ({reason}); mirroring goes on, and it is ` +
          "tried again after the next cycle.",
        { action: what, path, reason: reason(asError(error)) },
      );
      return;
    }
    if (this.#failing.delete(path)) {
      this.#options.log.info(`The ${what} file {path} is written again.`, { action: what, path });
    }
  }
}

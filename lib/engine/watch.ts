/**
 * `--watch`: file-system events as hints. An event only says "look here
 * soon": the paths events name are collected and handed to partial cycles,
 * which walk just those folders (see `mirror.ts`). Events can be lost (a
 * burst; the watcher says so); then a full cycle runs as soon as the events
 * settle. The periodic full cycle stays the truth.
 *
 * Where events come from: `watch_events.ts` (a worker that watches each
 * folder on its own, as the cycles' walks find them).
 *
 * @module
 */
import type { Entry } from "../core/entry.ts";
import type { HintSource } from "./loop.ts";
import type { WriteObserver } from "./mirror.ts";
import { asError } from "../core/error.ts";
import { parentOf } from "../core/paths.ts";
import {
  BURST,
  type EventBatch,
  type EventSource,
  type EventSourceFactory,
  MAX_WATCHERS,
  workerEvents,
} from "./watch_events.ts";

/** Paths waiting for a partial cycle, filled by the events (a `HintSource` for `runLoop`). */
export class Hints implements HintSource {
  #paths = new Set<string>();
  #full = false;
  #wake: (() => void) | undefined;

  /** Paths waiting. */
  get size(): number {
    return this.#paths.size;
  }

  /** Whether a full cycle is wanted now (events may have been lost). */
  get full(): boolean {
    return this.#full;
  }

  /**
   * Add paths (relative to the root) to look at soon.
   *
   * @param paths the paths.
   */
  add(paths: Iterable<string>): void {
    const before = this.#paths.size;
    for (const path of paths) this.#paths.add(path);
    if (this.#paths.size !== before) this.#wakeUp();
  }

  /** Ask for a full cycle now. */
  requestFull(): void {
    this.#full = true;
    this.#wakeUp();
  }

  /**
   * Return the waiting paths and start a new batch (a full cycle requested
   * is taken with them).
   *
   * @returns the paths.
   */
  take(): ReadonlySet<string> {
    const paths = this.#paths;
    this.#paths = new Set();
    this.#full = false;
    return paths;
  }

  /**
   * Call `wake` once, at the next {@link add} or {@link requestFull}.
   *
   * @param wake the function to call.
   */
  onAdd(wake: () => void): void {
    this.#wake = wake;
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/** How long after a cycle the events of its writes still count as its own. */
export const OWN_WRITE_MS = 1000;

/**
 * Replica paths the mirror is writing or has just written, and how it left
 * them. Their events are its own, and so is every event below a folder it
 * wrote or removed. Such an event is worth a look only if, once the window is
 * over, the path is no longer as the mirror left it: someone else's edit.
 *
 * The state compared is the caller's (the program uses the stat key and the
 * mode): an edit in the same second as the mirror's own write that keeps the
 * size and restores the mtime is not seen here; the next full cycle, which
 * reads both sides of a freshly copied file, catches it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { OwnWrites } from "./watch.ts";
 * const own = new OwnWrites();
 * const state = new Map([["docs", "v1"]]);
 * own.written(["docs"], (path) => state.get(path) ?? "absent", 0);
 * assert.deepEqual(own.split(["docs/a.txt", "b.txt"], 500), { foreign: ["b.txt"], own: ["docs/a.txt"] });
 * assert.deepEqual(own.split(["docs/a.txt"], 1001), { foreign: ["docs/a.txt"], own: [] });
 * assert.deepEqual(own.changed(["docs/a.txt"], (path) => state.get(path) ?? "absent"), []);
 * state.set("docs", "v2"); // someone else's edit
 * assert.deepEqual(own.changed(["docs/a.txt"], (path) => state.get(path) ?? "absent"), ["docs/a.txt"]);
 * ```
 */
export class OwnWrites {
  /** Path -> until when (performance.now() ms) its events are the mirror's
   * (Infinity while it writes), and its state as the mirror left it. */
  readonly #written = new Map<string, { until: number; left?: string }>();

  /** The mirror is about to write `paths`: their events are its own until {@link written}. */
  writing(paths: readonly string[]): void {
    for (const path of paths) this.#written.set(path, { until: Infinity });
  }

  /** The mirror has written `paths`, which `state` describes now; their events
   * stay its own for {@link OWN_WRITE_MS}. */
  written(
    paths: readonly string[],
    state: (path: string) => string,
    now = performance.now(),
  ): void {
    // Kept a window longer than they count as own, for changed() to compare.
    for (const [path, { until }] of this.#written) {
      if (until + OWN_WRITE_MS < now) this.#written.delete(path);
    }
    for (const path of paths) {
      this.#written.set(path, { until: now + OWN_WRITE_MS, left: state(path) });
    }
  }

  /** Event paths the mirror did not cause, and those it did (at `now`). */
  split(paths: Iterable<string>, now = performance.now()): { foreign: string[]; own: string[] } {
    const foreign: string[] = [], own: string[] = [];
    for (const path of paths) {
      const record = this.#nearest(path);
      ((record?.[1].until ?? -Infinity) >= now ? own : foreign).push(path);
    }
    return { foreign, own };
  }

  /** Of `paths` (own events), those no longer as the mirror left them, judged
   * by the nearest written path at or above each; unknown ones count as changed. */
  changed(paths: Iterable<string>, state: (path: string) => string): string[] {
    return [...paths].filter((path) => {
      const record = this.#nearest(path);
      return record?.[1].left === undefined || state(record[0]) !== record[1].left;
    });
  }

  /** The record of `path` or of the closest folder above it. */
  #nearest(path: string): [string, { until: number; left?: string }] | undefined {
    for (let at = path;; at = parentOf(at)) {
      const record = this.#written.get(at);
      if (record !== undefined) return [at, record];
      if (!at.includes("/")) return undefined;
    }
  }
}

/** What {@link WatchMode} needs to know of the mirror it watches for. */
export interface WatchModeOptions {
  /** The source and replica folders (real paths), found anew after each cycle. */
  readonly roots: () => { readonly source: string; readonly replica: string };
  /** A replica entry as it is now (undefined: there is none). May throw
   * (the path cannot be examined): the path then counts as changed. */
  readonly stat: (path: string) => Entry | undefined;
  /** Forget what is known of replica files someone else wrote (their
   * content is compared next, whatever their stat keys say). */
  readonly distrust: (paths: readonly string[]) => void;
  /** Whether a replica path is one of this run's temp files, or lies in one. */
  readonly isOwnTemp: (path: string) => boolean;
  /** Folders that cannot be watched (said once per root): the full cycles still mirror them. */
  readonly onFailure: (root: string, error: Error) => void;
  /**
   * Where the events come from.
   *
   * @default `workerEvents` (a worker thread)
   */
  readonly events?: EventSourceFactory;
  /**
   * Quiet time after events that may have lost others before the full cycle
   * they call for (ms).
   *
   * @default {300}
   */
  readonly settleMs?: number;
  /**
   * Paths named within a second from which events may have been lost (a
   * queue of the watcher overflows without a word): a full cycle follows.
   *
   * @default {BURST}
   */
  readonly burst?: number;
}

/** What the events of a {@link WatchMode} did so far. */
export interface WatchActivity {
  /** Paths events named (in both trees, the mirror's own writes included). */
  readonly events: number;
  /** Times events may have been lost (the watcher said so, or a burst). */
  readonly overflows: number;
  /** Full cycles asked for, once events settled (events may have been lost, or a partial
   * cycle found what only a full cycle settles). */
  readonly fullCycles: number;
}

/**
 * `--watch`, in one place: every folder a cycle walks is watched on its own
 * (both trees); events are hints for partial cycles (collected in
 * {@link WatchMode.hints}); a possible loss of events asks for a full cycle
 * once they settle; the events of the mirror's own writes in the replica (it
 * tells the mode as a {@link WriteObserver}) are looked at once their second
 * is over, and only if the path is no longer as the mirror left it; someone
 * else's write makes the mirror compare that file's content; a file left
 * behind because it kept changing is looked at again when its pause is over.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WatchMode } from "./watch.ts";
 * const dir = Deno.realPathSync(Deno.makeTempDirSync());
 * const mode = new WatchMode({
 *   roots: () => ({ source: dir, replica: dir }),
 *   stat: () => undefined,
 *   distrust: () => {},
 *   isOwnTemp: () => false,
 *   onFailure: () => {},
 *   events: () => ({ watch: () => {}, close: () => {} }),
 * });
 * mode.written(["a"]);
 * assert.equal(mode.hints.size, 0);
 * mode.close();
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class WatchMode implements WriteObserver {
  /** Paths waiting for a partial cycle. */
  readonly hints: Hints = new Hints();
  readonly #options: WatchModeOptions;
  readonly #ownWrites = new OwnWrites();
  #events: EventSource | undefined;
  /** Watches the source holds (as its last batch said). */
  #watchers = 0;
  /** Sources being replaced by a new one: closed a moment later (no event missed meanwhile). */
  readonly #retiring = new Set<EventSource>();
  /** The roots watched (their real paths). */
  #roots: { readonly source: string; readonly replica: string } | undefined;
  /** Per tree: folder path -> the inode it was watched with (a new one is watched again). */
  readonly #watched = { source: new Map<string, number>(), replica: new Map<string, number>() };
  /** Folders to watch, sent a few at a time. */
  #pending: string[] = [];
  /** Those of {@link #pending} to watch with every folder below them. */
  #below: string[] = [];
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #reported = new Set<string>();
  #settle: ReturnType<typeof setTimeout> | undefined;
  /** Paths received since {@link #windowStart} (a burst may have lost events). */
  #inWindow = 0;
  #windowStart = 0;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #activity = { events: 0, overflows: 0, fullCycles: 0 };

  /** @param options see {@link WatchModeOptions}. */
  constructor(options: WatchModeOptions) {
    this.#options = options;
  }

  /** What the events did so far (a copy). */
  get activity(): WatchActivity {
    return { ...this.#activity };
  }

  writing(paths: readonly string[]): void {
    this.#ownWrites.writing(paths);
  }

  written(paths: readonly string[]): void {
    this.#ownWrites.written(paths, (path) => this.#state(path));
  }

  /**
   * A cycle listed the folder `dir` of one tree: it is watched (again, when
   * its inode is new: made again, or renamed there) at the next {@link ensure}.
   *
   * @param side which tree.
   * @param dir the folder's path relative to the root.
   * @param entry the folder itself.
   */
  folder(side: "source" | "replica", dir: string, entry: Entry): void {
    const roots = this.#roots;
    if (roots === undefined) return; // not watching yet: see ensure
    const watched = this.#watched[side];
    if (watched.get(dir) === entry.ino) return;
    watched.set(dir, entry.ino);
    const root = roots[side];
    this.#pending.push(dir === "" ? root : `${root === "/" ? "" : root}/${dir}`);
    // Watched as soon as listed (what changes before is the full cycle's):
    // a few folders a time, not a message each.
    if (this.#pending.length >= 256) this.#flush();
    else if (this.#flushTimer === undefined) {
      this.#flushTimer = setTimeout(() => this.#flush(), 0);
    }
  }

  /**
   * A copy of `path` was left behind (its source kept changing): look at it
   * again once its pause is over.
   *
   * @param path the file's path relative to the roots.
   * @param ms the pause.
   */
  paused(path: string, ms: number): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.hints.add([path]);
    }, ms + 50);
    Deno.unrefTimer(timer);
    this.#timers.add(timer);
  }

  /** A partial cycle found what only a full cycle settles: one runs once events settle. */
  fullCycleWanted(): void {
    this.#fullSoon();
  }

  /**
   * Events in the replica: someone else's are looked at at once (and their
   * content compared); the mirror's own, a second later, and only if the path
   * is no longer as it left it. A path whose content was written in place is
   * always someone else's (the mirror writes contents under temp names only).
   *
   * @param paths the paths events named, relative to the replica root.
   * @param written those whose content was written in place.
   */
  replicaEvents(paths: Iterable<string>, written: ReadonlySet<string> = new Set()): void {
    const split = this.#ownWrites.split(paths);
    const foreign = [...split.foreign, ...split.own.filter((path) => written.has(path))];
    const own = split.own.filter((path) => !written.has(path));
    this.#options.distrust(foreign);
    this.hints.add(foreign);
    if (own.length === 0) return;
    const later = () => {
      const changed = this.#ownWrites.changed(own, (path) => this.#state(path));
      this.#options.distrust(changed);
      this.hints.add(changed);
    };
    Deno.unrefTimer(setTimeout(later, OWN_WRITE_MS));
  }

  /**
   * Start watching (before the first cycle), and again where a root points
   * elsewhere now (a switched symlink); watch the folders listed that are not
   * watched yet. Call it before the first cycle and after each one.
   */
  ensure(): void {
    const roots = this.#options.roots();
    if (roots.source !== this.#roots?.source || roots.replica !== this.#roots?.replica) {
      this.#events?.close();
      this.#watched.source.clear();
      this.#watched.replica.clear();
      this.#pending = [roots.source, roots.replica]; // the next walk names the rest
      // The source's folders, all, are watched before the cycle lists them (a file changed
      // between its folder's listing and its watch would wait for the next full cycle).
      this.#below = [roots.source];
      this.#roots = roots;
      this.#events = this.#newSource(roots);
    } else if (this.#watchers > MAX_WATCHERS) this.#renew(roots);
    this.#flush();
  }

  /**
   * Settles once every folder asked for so far is watched (at most `ms`
   * later: a watcher that cannot say so never holds the mirror up).
   *
   * @param ms how long to wait at most.
   */
  async ready(ms = 2_000): Promise<void> {
    const settled = this.#events?.settled?.();
    if (settled === undefined) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => timer = setTimeout(resolve, ms));
    await Promise.race([settled, late]);
    clearTimeout(timer);
  }

  #newSource(roots: { readonly source: string; readonly replica: string }): EventSource {
    this.#watchers = 0;
    const factory = this.#options.events ?? workerEvents;
    const made: EventSource = factory(
      (batch) => this.#batch(batch, made),
      [roots.source, roots.replica],
    );
    return made;
  }

  /**
   * Each event reaches every watch of the source, and they only grow (a few
   * each time folders are made): move to a new source with one watch of
   * every folder; the old one is closed a moment later, once the new one
   * watches them all (an event meanwhile comes twice: no harm).
   */
  #renew(roots: { readonly source: string; readonly replica: string }): void {
    const old = this.#events;
    this.#events = this.#newSource(roots);
    const folders = [roots.source, roots.replica];
    for (const side of ["source", "replica"] as const) {
      const root = roots[side] === "/" ? "" : roots[side];
      for (const dir of this.#watched[side].keys()) if (dir !== "") folders.push(`${root}/${dir}`);
    }
    this.#pending = [...folders, ...this.#pending];
    if (old === undefined) return;
    this.#retiring.add(old);
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#retiring.delete(old);
      old.close();
    }, 1000);
    Deno.unrefTimer(timer);
    this.#timers.add(timer);
  }

  /** Send the folders waiting to be watched. */
  #flush(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    if (this.#pending.length === 0 || this.#events === undefined) return;
    this.#events.watch(this.#pending, this.#below);
    this.#pending = [];
    this.#below = [];
  }

  /** Stop watching. */
  close(): void {
    this.#events?.close();
    this.#events = undefined;
    for (const old of this.#retiring) old.close();
    this.#retiring.clear();
    clearTimeout(this.#flushTimer);
    clearTimeout(this.#settle);
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  /** A batch of events (from `from`): hints for each tree; a possible loss calls for a full cycle. */
  #batch(batch: EventBatch, from: EventSource): void {
    const roots = this.#roots;
    if (roots === undefined) return;
    if (from === this.#events && batch.watchers !== undefined) this.#watchers = batch.watchers;
    const relative = (root: string, path: string) =>
      path === root ? "" : path.startsWith(`${root}/`) ? path.slice(root.length + 1) : undefined;
    const source: string[] = [], replica: string[] = [];
    for (const path of batch.paths) {
      const inReplica = relative(roots.replica, path);
      if (inReplica !== undefined) {
        if (!this.#options.isOwnTemp(inReplica)) replica.push(inReplica);
        continue;
      }
      const inSource = relative(roots.source, path);
      if (inSource !== undefined) source.push(inSource);
    }
    const written = new Set<string>();
    for (const path of batch.written) {
      const inReplica = relative(roots.replica, path);
      if (inReplica !== undefined) written.add(inReplica);
    }
    this.hints.add(source);
    if (replica.length > 0) this.replicaEvents(replica, written);
    if (batch.failed) this.#failed(batch.failed.paths, batch.failed.error);
    // A burst: more paths within a second (of when their events came) than
    // events are kept without loss.
    const now = batch.at ?? Date.now();
    if (now - this.#windowStart > 1000 || now < this.#windowStart) {
      this.#windowStart = now;
      this.#inWindow = 0;
    }
    this.#inWindow += batch.paths.length;
    this.#activity.events += batch.paths.length;
    const burst = this.#inWindow > (this.#options.burst ?? BURST);
    if (batch.lost || burst) this.#activity.overflows++;
    // Events may have been lost: a full cycle once they settle.
    if (batch.lost || burst || this.#settle !== undefined) this.#fullSoon();
  }

  /** A full cycle once events settle (each event puts it off). */
  #fullSoon(): void {
    clearTimeout(this.#settle);
    this.#settle = setTimeout(() => {
      this.#settle = undefined;
      this.#activity.fullCycles++;
      this.hints.requestFull();
    }, this.#options.settleMs ?? 300);
    Deno.unrefTimer(this.#settle);
  }

  /** Folders that could not be watched: tried again when a cycle lists them; said once a root. */
  #failed(paths: readonly string[], error: string): void {
    const roots = this.#roots;
    if (roots === undefined) return;
    for (const side of ["source", "replica"] as const) {
      const root = roots[side];
      const mine = paths.filter((path) => path === root || path.startsWith(`${root}/`));
      if (mine.length === 0) continue;
      for (const path of mine) {
        this.#watched[side].delete(path === root ? "" : path.slice(root.length + 1));
      }
      if (this.#reported.has(root)) continue;
      this.#reported.add(root);
      this.#options.onFailure(root, new Error(error));
    }
  }

  /** A replica path's stat key and mode, "absent", or "unreadable" (a
   * folder above it replaced by a file, no access: never as the mirror left it). */
  #state(path: string): string {
    let entry: Entry | undefined;
    try {
      entry = this.#options.stat(path);
    } catch (error) {
      return `unreadable: ${asError(error).name}`;
    }
    return entry === undefined
      ? "absent"
      : `${entry.size}:${entry.mtimeMs}:${entry.ctimeMs}:${entry.ino}:${entry.mode}`;
  }
}

import type { Entry } from "./entry.ts";
import type { HintSource } from "./loop.ts";
import type { WriteObserver } from "./mirror.ts";
import { asError } from "./error.ts";
import { parentOf } from "./paths.ts";
/**
 * File-system events as hints. `Deno.watchFs` drops events silently in
 * bursts, so an event only says "look here soon": the paths it names are
 * collected, briefly debounced, and handed over as a batch. The periodic full
 * cycle stays the truth and repairs whatever an event missed.
 *
 * @module
 */

/** Paths waiting for a partial cycle, filled by the watchers (a `HintSource` for `runLoop`). */
export class Hints implements HintSource {
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

/** Options of {@link watchTree}. */
export interface WatchOptions {
  /**
   * Quiet time after the last event before a batch is handed over.
   *
   * @default 10 ms
   */
  readonly quietMs?: number;
  /**
   * Longest wait after the first event of a batch.
   *
   * @default 50 ms
   */
  readonly maxDelayMs?: number;
  /**
   * Called once if the root itself is removed: the watch then ends (a folder
   * made again under that name is not watched).
   *
   * @default nothing
   */
  readonly onGone?: () => void;
  /**
   * Relative paths whose events are left out (the program's own temp
   * files).
   *
   * @default none
   */
  readonly ignore?: (path: string) => boolean;
}

/** A running watch; `close()` stops it. */
export interface Watch {
  close(): void;
}

/**
 * Watch `root` recursively and call `onBatch` with the relative paths (`/`
 * separated; `""` for the root itself) that events named, but those
 * `options.ignore` leaves out, and, second, those of them whose content was
 * written in place (a file closed after writing; inotify's `IN_CLOSE_WRITE`,
 * which Deno reports as an "access" event). Renaming a file into place or
 * changing its attributes does not count as written in place.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { watchTree } from "./watch.ts";
 * const dir = Deno.realPathSync(Deno.makeTempDirSync());
 * const batch = Promise.withResolvers<ReadonlySet<string>>();
 * const watch = watchTree(dir, batch.resolve);
 * await new Promise((resolve) => setTimeout(resolve, 50));
 * Deno.writeTextFileSync(`${dir}/new.txt`, "hi");
 * assert.ok((await batch.promise).has("new.txt"));
 * watch.close();
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function watchTree(
  root: string,
  onBatch: (paths: ReadonlySet<string>, written: ReadonlySet<string>) => void,
  options: WatchOptions = {},
): Watch {
  const quietMs = options.quietMs ?? 10;
  const maxDelayMs = options.maxDelayMs ?? 50;
  const ignore = options.ignore;
  const watcher = Deno.watchFs(root, { recursive: true });
  let batch = new Set<string>();
  let written = new Set<string>();
  let firstAt = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const handOver = () => {
    timer = undefined;
    const paths = batch, inPlace = written;
    batch = new Set();
    written = new Set();
    if (paths.size > 0) onBatch(paths, inPlace);
  };
  const prefix = root.endsWith("/") ? root : `${root}/`;
  const close = () => {
    if (timer !== undefined) clearTimeout(timer);
    try {
      watcher.close();
    } catch {
      // already closed
    }
  };
  (async () => {
    for await (const event of watcher) {
      if (event.kind === "remove" && event.paths.includes(root)) {
        close();
        options.onGone?.();
        return;
      }
      for (const path of event.paths) {
        const relative = path === root
          ? ""
          : path.startsWith(prefix)
          ? path.slice(prefix.length)
          : undefined;
        if (relative === undefined || ignore?.(relative)) continue;
        if (batch.size === 0) firstAt = performance.now();
        batch.add(relative);
        if (event.kind === "access") written.add(relative);
      }
      if (batch.size === 0) continue;
      if (timer !== undefined) clearTimeout(timer);
      const wait = Math.min(quietMs, Math.max(0, firstAt + maxDelayMs - performance.now()));
      timer = setTimeout(handOver, wait);
    }
  })().catch(() => {
    // The watcher was closed, or the root vanished: the periodic cycle carries on.
  });
  return { close };
}

/** One root to watch and where its batches go. */
export interface WatchTarget {
  /** The folder, or how to find it now (a source given as a symlink that is
   * switched is watched where it points after the switch). */
  readonly root: string | (() => string);
  readonly onBatch: (paths: ReadonlySet<string>, written: ReadonlySet<string>) => void;
  /**
   * Relative paths whose events are left out.
   *
   * @default none
   */
  readonly ignore?: (path: string) => boolean;
}

/**
 * Watches over several roots that may not all be watchable yet (a replica the
 * first cycle creates, a disk not mounted yet). {@link RootWatches.ensure}
 * watches every root not watched yet — call it after each full cycle; a root
 * that is removed is watched again by the next call that finds it back. A
 * failure other than a missing folder (the system's limit on watches) is
 * reported once per root: the full cycles still mirror that tree.
 */
export class RootWatches {
  readonly #targets: readonly WatchTarget[];
  readonly #onFailure: (root: string, error: Error) => void;
  readonly #watch: typeof watchTree;
  /** Target index -> the folder watched for it and its watch. */
  readonly #watches = new Map<number, { root: string; watch: Watch }>();
  readonly #reported = new Set<string>();

  constructor(
    targets: readonly WatchTarget[],
    onFailure: (root: string, error: Error) => void,
    watch: typeof watchTree = watchTree,
  ) {
    this.#targets = targets;
    this.#onFailure = onFailure;
    this.#watch = watch;
  }

  /** Roots watched now. */
  get watched(): string[] {
    return [...this.#watches.values()].map(({ root }) => root);
  }

  ensure(): void {
    this.#targets.forEach(({ root: where, onBatch, ignore }, i) => {
      const root = typeof where === "function" ? where() : where;
      const current = this.#watches.get(i);
      if (current?.root === root) return;
      current?.watch.close(); // it points elsewhere now
      this.#watches.delete(i);
      try {
        const onGone = () => {
          if (this.#watches.get(i)?.root === root) this.#watches.delete(i);
        };
        this.#watches.set(i, { root, watch: this.#watch(root, onBatch, { onGone, ignore }) });
      } catch (error) {
        if (error instanceof Deno.errors.NotFound || this.#reported.has(root)) return;
        this.#reported.add(root);
        this.#onFailure(root, error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  close(): void {
    for (const { watch } of this.#watches.values()) watch.close();
    this.#watches.clear();
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
  /** The source and replica folders to watch, found anew after each full cycle. */
  readonly roots: () => { readonly source: string; readonly replica: string };
  /** A replica entry as it is now (undefined: there is none). May throw
   * (the path cannot be examined): the path then counts as changed. */
  readonly stat: (path: string) => Entry | undefined;
  /** Forget what is known of replica files someone else wrote (their
   * content is compared next, whatever their stat keys say). */
  readonly distrust: (paths: readonly string[]) => void;
  /** Whether a replica path is one of this run's temp files, or lies in one. */
  readonly isOwnTemp: (path: string) => boolean;
  /** A root that cannot be watched (said once per root). */
  readonly onFailure: (root: string, error: Error) => void;
}

/**
 * `--watch`, in one place: both trees are watched; events are hints for
 * partial cycles (collected in {@link WatchMode.hints}); the events of the
 * mirror's own writes in the replica (it tells the mode as a
 * {@link WriteObserver}) are looked at once their second is over, and only if
 * the path is no longer as the mirror left it; someone else's write makes the
 * mirror compare that file's content.
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
  readonly #watches: RootWatches;

  /** @param options see {@link WatchModeOptions}. */
  constructor(options: WatchModeOptions) {
    this.#options = options;
    this.#watches = new RootWatches(
      [
        { root: () => options.roots().source, onBatch: (paths) => this.hints.add(paths) },
        {
          root: () => options.roots().replica,
          onBatch: (paths, written) => this.replicaEvents(paths, written),
          ignore: options.isOwnTemp,
        },
      ],
      options.onFailure,
    );
  }

  writing(paths: readonly string[]): void {
    this.#ownWrites.writing(paths);
  }

  written(paths: readonly string[]): void {
    this.#ownWrites.written(paths, (path) => this.#state(path));
  }

  /**
   * Events in the replica: someone else's are looked at at once (and their
   * content compared); the mirror's own, a second later, and only if the path
   * is no longer as it left it. A path whose content was written in place is
   * always someone else's (the mirror writes contents under temp names only).
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

  /** Watch every root not watched yet (again, after a full cycle). */
  ensure(): void {
    this.#watches.ensure();
  }

  /** Stop watching. */
  close(): void {
    this.#watches.close();
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

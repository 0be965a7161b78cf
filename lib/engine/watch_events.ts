/**
 * File-system events for `--watch`, drained on a worker thread: a cycle busy
 * on the main thread (sync calls for seconds) must not leave `Deno.watchFs`'s
 * small queue (16 events) full, which drops events without a word.
 *
 * Each folder is watched on its own (`recursive: false`), as the walk of a
 * cycle finds it, so a symlink to a folder is never followed (a recursive
 * watch follows them: a link to `/usr` cost 16,800 inotify watches). A folder
 * made or moved in is watched by the worker as soon as its event comes, with
 * every folder below it, before the event is handed on: whatever is written
 * in it after that has events of its own, and what came before, the partial
 * cycle finds when it walks the new folder whole.
 *
 * Deno keeps one inotify instance per thread and hands each event to every
 * `Deno.watchFs` of the thread whose folders it belongs to, comparing the
 * event's path with each folder given, one by one, by their real paths
 * (syscalls): an event costs time in the number of folders watched
 * (measured: ~5 ms an event at 400 folders). So each watch is given the two
 * roots first, which every event lies under: an event is matched at once
 * (~0.5 ms at any number of folders), and reaches every watch of the thread
 * (the paths are merged, so that costs only the copies). A removed path's
 * event still goes through every folder (its path no longer resolves);
 * and the watches only grow: once there are many, the watch mode moves to a
 * new worker with one watch of every folder ({@link EventBatch.watchers}).
 *
 * Events are batched (5 ms of quiet, 50 ms at most) and handed to the main
 * thread as absolute paths. A batch says when events may have been lost: the
 * watcher said so (its `rescan` flag), or 16 events were waiting at once (a
 * full queue); the watch mode also takes a burst (more than {@link BURST}
 * paths within a second) for a possible loss, and runs a full cycle once the
 * events settle.
 *
 * The worker's code is made from the function below by its source text and
 * started from a `blob:` URL (as the copy worker and the read-ahead are): it
 * needs no read access to the program's files.
 *
 * @module
 */

/** One batch of events. */
export interface EventBatch {
  /** The absolute paths the events named. */
  readonly paths: readonly string[];
  /** Of those, the files whose content was written in place (closed after writing). */
  readonly written: readonly string[];
  /** Events may have been lost (the watcher said so): look at everything. */
  readonly lost: boolean;
  /** When its first event came (epoch ms): a burst is told by when events came, not
   * by when they are handled. Default: when the batch is handled. */
  readonly at?: number;
  /** Folders that could not be watched, and why (the system's limit on watches). */
  readonly failed?: { readonly paths: readonly string[]; readonly error: string };
  /** How many `Deno.watchFs` the source holds (each event reaches each). */
  readonly watchers?: number;
}

/** Where events come from; {@link workerEvents} is the real one, tests give others. */
export interface EventSource {
  /**
   * Watch these folders too (each on its own, not recursively).
   *
   * @param folders absolute paths.
   * @param below those of `folders` to watch with every folder below them
   *   (found where the watching runs).
   */
  watch(folders: readonly string[], below?: readonly string[]): void;
  /**
   * Settles once every folder asked for so far is watched (or could not
   * be). Optional: a source without it watches at once.
   */
  settled?(): Promise<void>;
  /** Stop watching. */
  close(): void;
}

/**
 * Makes an {@link EventSource} that hands its batches to `onBatch`; `roots`
 * are the two trees' roots (every folder watched lies in one of them).
 */
export type EventSourceFactory = (
  onBatch: (batch: EventBatch) => void,
  roots: readonly string[],
) => EventSource;

/**
 * Paths named within a second from which a loss of events is suspected:
 * `Deno.watchFs` passes events through a queue of 16 and drops what
 * overflows without a word (measured: ~20% of 10,000 files created fast).
 */
export const BURST = 500;

/** What the worker is told. */
type WorkerRequest =
  | {
    readonly watch: readonly string[];
    readonly below?: readonly string[];
    readonly ack?: number;
  }
  | { readonly stop: true };

/** Watches (`Deno.watchFs`) a source may hold before the watch mode moves to a new one. */
export const MAX_WATCHERS = 16;

/**
 * The worker's event loop: watches folders as told, and the folders made or
 * moved in below them; batches events; posts each batch. Made from its
 * source text, so it uses nothing but its parameters.
 *
 * @param post sends a batch to the main thread.
 * @param timing quiet time and longest wait of a batch (ms), and the burst size.
 * @param roots the trees' roots: given first to every watch (see the module documentation).
 * @returns the handler of the worker's requests.
 */
export function watchLoop(
  post: (batch: EventBatch) => void,
  timing: { readonly quietMs: number; readonly maxDelayMs: number },
  roots: readonly string[] = [],
): (request: WorkerRequest) => void {
  const watchers: Deno.FsWatcher[] = [];
  /** Inode -> the path it is watched at (a folder renamed is watched again at its new path). */
  const watching = new Map<number, string>();
  let paths = new Set<string>(), written = new Set<string>(), lost = false;
  let firstAt = 0, timer: ReturnType<typeof setTimeout> | undefined;
  /** Folders made or moved in: watched, with all below them, before their batch is handed on. */
  let fresh: string[] = [];
  let failed: { paths: string[]; error: string } | undefined;
  const flush = () => {
    timer = undefined;
    if (fresh.length > 0) {
      const made = fresh;
      fresh = [];
      watch(made.flatMap(foldersIn));
    }
    if (paths.size === 0 && failed === undefined) return;
    const batch = {
      paths: [...paths],
      written: [...written],
      lost,
      at: performance.timeOrigin + firstAt,
      watchers: watchers.length,
      ...(failed ? { failed } : {}),
    };
    paths = new Set();
    written = new Set();
    lost = false;
    failed = undefined;
    post(batch);
  };
  const schedule = () => {
    if (timer !== undefined) clearTimeout(timer);
    const wait = Math.min(
      timing.quietMs,
      Math.max(0, firstAt + timing.maxDelayMs - performance.now()),
    );
    timer = setTimeout(flush, wait);
  };
  /** The folder at `path` and every folder below it (symlinks not followed). */
  const foldersIn = (path: string): string[] => {
    const found: string[] = [];
    const pending = [path];
    for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
      try {
        if (!Deno.lstatSync(dir).isDirectory) continue;
        found.push(dir);
        for (const entry of Deno.readDirSync(dir)) {
          if (entry.isDirectory) pending.push(`${dir}/${entry.name}`);
        }
      } catch {
        // gone meanwhile, or not readable: nothing to watch there
      }
    }
    return found;
  };
  const watch = (given: readonly string[]) => {
    const folders = given.filter((folder) => {
      try {
        const info = Deno.lstatSync(folder);
        if (!info.isDirectory || watching.get(info.ino ?? -1) === folder) return false;
        watching.set(info.ino ?? -1, folder);
        return true;
      } catch {
        return false; // gone meanwhile
      }
    });
    if (folders.length === 0) return;
    // The roots watched first (an event is matched at once), then the folders.
    const watched = new Set(watching.values());
    const first = roots.filter((root) => watched.has(root) && !folders.includes(root));
    let watcher: Deno.FsWatcher;
    try {
      try {
        watcher = Deno.watchFs([...first, ...folders], { recursive: false });
      } catch (error) {
        if (first.length === 0) throw error;
        watcher = Deno.watchFs([...folders], { recursive: false }); // a root gone meanwhile
      }
    } catch (error) {
      // One by one: those that can be watched are, the others are reported.
      for (const folder of folders) {
        for (const [ino, path] of watching) if (path === folder) watching.delete(ino);
      }
      if (folders.length > 1) {
        for (const folder of folders) watch([folder]);
        return;
      }
      const reason = error instanceof Error ? error.message : String(error);
      failed ??= { paths: [], error: reason };
      failed.paths.push(...folders);
      schedule();
      return;
    }
    watchers.push(watcher);
    (async () => {
      /** Events this watch handed on since the thread last had nothing to do: its
       * queue holds 16 (Deno drops the rest unsaid), so 16 at once may have lost some. */
      let inTurn = 0, turnEnds: ReturnType<typeof setTimeout> | undefined;
      for await (const event of watcher) {
        if (paths.size === 0) firstAt = performance.now();
        if (event.flag === "rescan") lost = true;
        if (++inTurn >= QUEUE) lost = true;
        turnEnds ??= setTimeout(() => (inTurn = 0, turnEnds = undefined), 0);
        for (const path of event.paths) {
          paths.add(path);
          if (event.kind === "access") written.add(path);
        }
        // A folder made or moved in is watched, with all below it, before its batch goes.
        if (event.kind === "create" || event.kind === "rename") fresh.push(...event.paths);
        schedule();
      }
    })().catch(() => {
      // closed
    });
  };
  return (request) => {
    if ("watch" in request) {
      const below = request.below ?? [];
      watch(
        request.watch.flatMap((folder) => below.includes(folder) ? foldersIn(folder) : [folder]),
      );
      // Every folder of the request is watched now: said back where asked.
      if (request.ack !== undefined) post({ ack: request.ack } as unknown as EventBatch);
    } else {
      for (const watcher of watchers) {
        try {
          watcher.close();
        } catch {
          // closed already
        }
      }
      watchers.length = 0;
    }
  };
}

/** The events `Deno.watchFs` keeps waiting (it drops the ones beyond, unsaid). */
const QUEUE = 16;

/** Batch timing of the real source. */
const TIMING = { quietMs: 5, maxDelayMs: 50 };

/**
 * Events from a worker thread (see the module documentation). A worker that
 * cannot start makes the watch run on the main thread instead.
 *
 * @param onBatch receives each batch.
 * @returns the source.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { workerEvents } from "./watch_events.ts";
 * const dir = Deno.realPathSync(Deno.makeTempDirSync());
 * const batch = Promise.withResolvers<readonly string[]>();
 * const events = workerEvents((got) => batch.resolve(got.paths), [dir]);
 * events.watch([dir]);
 * await new Promise((resolve) => setTimeout(resolve, 300));
 * Deno.writeTextFileSync(`${dir}/new.txt`, "hi");
 * assert.ok((await batch.promise).includes(`${dir}/new.txt`));
 * events.close();
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export const workerEvents: EventSourceFactory = (onBatch, roots) => {
  let worker: Worker | undefined;
  try {
    const source = [
      String(watchLoop),
      `const QUEUE = ${QUEUE};`,
      `const handle = watchLoop((batch) => self.postMessage(batch), ${JSON.stringify(TIMING)}, ${
        JSON.stringify(roots)
      });`,
      "self.onmessage = (event) => handle(event.data);",
    ].join("\n");
    const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
    worker = new Worker(url, { type: "module" });
    URL.revokeObjectURL(url);
  } catch {
    // No worker: the same loop on this thread.
    const handle = watchLoop(onBatch, TIMING, roots);
    return {
      watch: (folders, below) => handle({ watch: folders, ...(below?.length ? { below } : {}) }),
      close: () => handle({ stop: true }),
    };
  }
  const running = worker;
  /** Requests sent, and the last one the worker said it carried out. */
  let sent = 0, acked = 0;
  const waiting: { readonly upTo: number; readonly resolve: () => void }[] = [];
  running.onmessage = (event) => {
    if (typeof event.data?.ack !== "number") return onBatch(event.data);
    acked = event.data.ack;
    for (const waiter of waiting.splice(0)) {
      if (waiter.upTo <= acked) waiter.resolve();
      else waiting.push(waiter);
    }
  };
  // A worker that fails stops watching; the full cycles still mirror everything.
  running.onerror = (event) => {
    event.preventDefault();
    for (const waiter of waiting.splice(0)) waiter.resolve(); // nothing more will be watched
  };
  return {
    watch: (folders, below) =>
      running.postMessage(
        {
          watch: folders,
          ...(below?.length ? { below } : {}),
          ack: ++sent,
        } satisfies WorkerRequest,
      ),
    settled: () => {
      if (acked >= sent) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      waiting.push({ upTo: sent, resolve });
      return promise;
    },
    close: () => {
      running.terminate();
      for (const waiter of waiting.splice(0)) waiter.resolve();
    },
  };
};

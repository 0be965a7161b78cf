/**
 * A mirror of `work/src` into `work/rep` as `--watch` runs it, in the test's
 * own process: the watch mode told of the mirror's writes, and (with
 * {@link watchingLoop}) the loop of full and partial cycles.
 *
 * @module
 */
import { getLogger } from "npm:@logtape/logtape@^2.4.2";
import type { Disk } from "../lib/backends/local/disk.ts";
import { LocalReplica, LocalTree } from "../lib/backends/local/local.ts";
import { runLoop } from "../lib/engine/loop.ts";
import { Mirror } from "../lib/engine/mirror.ts";
import type { MirrorLog } from "../lib/engine/report.ts";
import { MirrorState } from "../lib/state/state.ts";
import { WatchMode } from "../lib/engine/watch.ts";
import type { EventSourceFactory } from "../lib/engine/watch_events.ts";

/** How a watching mirror is made. */
export interface WatchingOptions {
  /** Where events come from (default: the worker). */
  readonly events?: EventSourceFactory;
  /** The replica's disk (faults injected). */
  readonly disk?: Disk;
  /** `--exclude` patterns. */
  readonly exclude?: string[];
  /** Paths within a second taken for a burst. */
  readonly burst?: number;
  /** Where its lines go (default: LogTape's `test` category). */
  readonly log?: MirrorLog;
}

/**
 * A Mirror of `work/src` into `work/rep` as `--watch` makes it: a
 * {@link WatchMode} told of its writes (not yet watching: call `ensure`).
 */
export function watchingMirror(work: string, options: WatchingOptions = {}) {
  const roots = { source: `${work}/src`, replica: `${work}/rep` };
  const state = MirrorState.inMemory(roots);
  const source = new LocalTree(roots.source);
  const replica = new LocalReplica(roots.replica, {
    names: state,
    ...(options.disk ? { disk: options.disk } : {}),
  });
  const mode: WatchMode = new WatchMode({
    roots: () => ({ source: source.path, replica: replica.path }),
    stat: (path) => replica.stat(path),
    distrust: (paths) => mirror.distrustReplica(paths),
    isOwnTemp: (path) => state.temps.holds(path),
    onFailure: () => {},
    ...(options.events ? { events: options.events } : {}),
    ...(options.burst ? { burst: options.burst } : {}),
  });
  const mirror = new Mirror(source, replica, {
    log: options.log ?? getLogger(["test"]),
    state,
    writes: mode,
    ...(options.exclude ? { exclude: options.exclude } : {}),
  });
  return { mirror, mode, replica, state };
}

/**
 * {@link watchingMirror}, running as `--watch` runs it (the loop, a long
 * interval: `intervalMs`, ten minutes by default); `stop` ends it.
 */
export function watchingLoop(
  work: string,
  options: WatchingOptions & { readonly intervalMs?: number } = {},
) {
  const { mirror, mode, replica } = watchingMirror(work, options);
  const stop = new AbortController();
  let fullCycles = 0;
  mode.ensure();
  const running = runLoop(
    async (signal) => {
      fullCycles++;
      await mirror.cycle(signal);
      mode.ensure();
    },
    options.intervalMs ?? 600_000,
    stop.signal,
    {
      hints: mode.hints,
      cycle: async (paths, signal) => {
        await mirror.partialCycle(paths, signal);
        mode.ensure();
      },
    },
  );
  return {
    fullCycles: () => fullCycles,
    async stop() {
      stop.abort();
      await running;
      mode.close();
      replica.close();
    },
  };
}

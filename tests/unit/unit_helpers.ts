/** Helpers of the unit tests: collected log records, a Mirror of two local folders. */
import { configure, getLogger, type LogRecord, reset } from "npm:@logtape/logtape@^2.4.2";
import { type Disk, realDisk } from "../../lib/backends/local/disk.ts";
import { LocalReplica, LocalTree } from "../../lib/backends/local/local.ts";
import { Mirror, type MirrorOptions } from "../../lib/engine/mirror.ts";
import type { MirrorState } from "../../lib/state/state.ts";

/** Run `body` with the "test" logger's records collected (LogTape reset after). */
export async function withRecords(
  body: (records: LogRecord[]) => Promise<void> | void,
): Promise<void> {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { collect: (record: LogRecord) => void records.push(record) },
    loggers: [
      { category: ["test"], lowestLevel: "info", sinks: ["collect"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
  });
  try {
    await body(records);
  } finally {
    await reset();
  }
}

/**
 * A Mirror of `work/src` into `work/rep` whose log goes to the "test" logger,
 * on `disk`, with `state` (its names too) or one in memory.
 */
export function mirrorIn(
  work: string,
  disk: Disk = realDisk,
  state?: MirrorState,
  options: MirrorOptions = {},
): Mirror {
  const source = new LocalTree(`${work}/src`);
  const replica = new LocalReplica(`${work}/rep`, {
    disk,
    ...(state ? { names: state } : {}),
  });
  return new Mirror(source, replica, {
    log: getLogger(["test"]),
    ...(state ? { state } : {}),
    ...options,
  });
}

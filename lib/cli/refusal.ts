/**
 * Refuse a configuration that could lose data, before anything is touched.
 * Paths are compared as real paths, so a symlinked or `..`-spelled path does
 * not slip through.
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import { asError, reason } from "../core/error.ts";
import { isBucket } from "./options.ts";
import { isWithin, realPathOf } from "../core/paths.ts";

/** The paths a run works on. */
export interface Paths {
  readonly source: string;
  readonly replica: string;
  readonly logFile: string;
  readonly stateFile: string;
}

/** The target of `path` when it is a symlink (here: one whose target is missing). */
function danglingLink(path: string): string | undefined {
  try {
    return Deno.lstatSync(path).isSymlink ? Deno.readLinkSync(path) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Why this configuration must not run, as one line naming the flag; undefined
 * when it may run.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { refusal } from "./refusal.ts";
 * const dir = Deno.makeTempDirSync();
 * assert.match(
 *   refusal({ source: dir, replica: `${dir}/copy`, logFile: "log.txt", stateFile: "log.txt.state" }) ?? "",
 *   /inside/,
 * );
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function refusal(paths: Paths): string | undefined {
  const { source, replica, logFile, stateFile } = paths;
  try {
    if (!Deno.statSync(source).isDirectory) return `--source: '${source}' is not a folder.`;
  } catch (error) {
    return `--source: cannot use '${source}': ${reason(asError(error))}.`;
  }
  // A replica in a bucket (s3://) is checked when it is reached.
  const remote = isBucket(replica);
  if (!remote) {
    const refused = localReplicaRefusal(replica);
    if (refused !== undefined) return refused;
  }
  let real: Paths;
  try {
    real = {
      source: realPathOf(source),
      replica: remote ? replica : realPathOf(replica),
      logFile: realPathOf(logFile),
      stateFile: realPathOf(stateFile),
    };
  } catch (error) {
    return `cannot resolve the paths: ${reason(asError(error))}.`;
  }
  if (!remote) {
    const refused = overlapRefusal(real, paths);
    if (refused !== undefined) return refused;
  }
  if (isWithin(real.logFile, real.source)) {
    return `--log-file: '${logFile}' is inside the source folder, where it would be mirrored.`;
  }
  if (isWithin(real.stateFile, real.source)) {
    return `--state-file: '${stateFile}' is inside the source folder, where it would be mirrored.`;
  }
  if (real.stateFile === real.logFile) return `--state-file: '${stateFile}' is the log file.`;
  for (const [flag, file] of [["--log-file", logFile], ["--state-file", stateFile]] as const) {
    try {
      if (!Deno.statSync(dirname(resolve(file))).isDirectory) throw new Error("not a folder");
    } catch (error) {
      // Read access scoped to the files themselves: opening them will tell.
      if (error instanceof Deno.errors.NotCapable) continue;
      return `${flag}: cannot open '${file}': its folder is not usable (${
        reason(asError(error))
      }).`;
    }
  }
  return undefined;
}

/** Why a local replica folder cannot be used, if it cannot. */
function localReplicaRefusal(replica: string): string | undefined {
  try {
    if (!Deno.statSync(replica).isDirectory) {
      return `--replica: '${replica}' exists and is not a folder.`;
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      return `--replica: cannot use '${replica}': ${reason(asError(error))}.`;
    }
    const link = danglingLink(replica);
    if (link !== undefined) {
      return `--replica: '${replica}' is a symlink to '${link}', which does not exist.`;
    }
  }
  return undefined;
}

/** Why a local replica folder overlaps the source or holds the program's files, if it does. */
function overlapRefusal(real: Paths, paths: Paths): string | undefined {
  const { source, replica, logFile, stateFile } = paths;
  if (real.source === real.replica) {
    return `--replica: '${replica}' is the source folder itself.`;
  }
  if (isWithin(real.replica, real.source)) {
    return `--replica: '${replica}' is inside the source folder '${source}'.`;
  }
  if (isWithin(real.source, real.replica)) {
    return `--replica: '${replica}' contains the source folder '${source}'.`;
  }
  if (isWithin(real.logFile, real.replica)) {
    return `--log-file: '${logFile}' is inside the replica folder, where it would be deleted.`;
  }
  if (isWithin(real.stateFile, real.replica)) {
    return `--state-file: '${stateFile}' is inside the replica folder, where it would be deleted.`;
  }
  return undefined;
}

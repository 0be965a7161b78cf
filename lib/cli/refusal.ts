/**
 * Refuse a configuration that could lose data, before anything is touched.
 * Paths are compared as real paths, so a symlinked or `..`-spelled path does
 * not slip through.
 *
 * @module
 */
import { dirname } from "node:path";
import { asError, reason } from "../core/error.ts";
import { type Backend, ownFiles } from "../engine/backend.ts";
import { localBackend } from "../backends/local/backend.ts";
import { absolutePath, isWithin, realPathOf } from "../core/paths.ts";

/** The paths a run works on. */
export interface Paths {
  readonly source: string;
  readonly replica: string;
  /** Undefined: no log file (`--log-file -`). */
  readonly logFile: string | undefined;
  readonly stateFile: string;
  /** `--backup-dir`, if given. */
  readonly backupDir?: string;
  readonly statusFile?: string | undefined;
  readonly metricsFile?: string | undefined;
}

/**
 * Why this configuration must not run, as one line naming the flag; undefined
 * when it may run (`backend`: the replica's, whose own refusals come first).
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
export function refusal(paths: Paths, backend: Backend = localBackend): string | undefined {
  const { source, replica, logFile, stateFile } = paths;
  try {
    if (!Deno.statSync(source).isDirectory) return `--source: '${source}' is not a folder.`;
  } catch (error) {
    return `--source: cannot use '${source}': ${reason(asError(error))}.`;
  }
  // The replica is the backend's: a folder here is checked now, one elsewhere when reached.
  const refused = backend.refusal?.(replica, {
    source,
    logFile,
    stateFile,
    ...(paths.backupDir === undefined ? {} : { backupDir: paths.backupDir }),
    statusFile: paths.statusFile,
    metricsFile: paths.metricsFile,
  });
  if (refused !== undefined) return refused;
  const files = ownFiles(paths);
  let realSource: string, real: string[];
  try {
    realSource = realPathOf(source);
    real = files.map(([, file]) => realPathOf(file));
  } catch (error) {
    return `cannot resolve the paths: ${reason(asError(error))}.`;
  }
  for (const [at, [flag, file]] of files.entries()) {
    if (isWithin(real[at]!, realSource)) {
      return `${flag}: '${file}' is inside the source folder, where it would be mirrored.`;
    }
    const same = real.indexOf(real[at]!);
    if (same < at) {
      return `${flag}: '${file}' is the ${files[same]![0].slice(2).replace("-", " ")}.`;
    }
  }
  for (const [flag, file] of files) {
    try {
      if (!Deno.statSync(dirname(absolutePath(file))).isDirectory) throw new Error("not a folder");
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

/**
 * Refuse a configuration that could lose data, before anything is touched.
 * Paths are compared as real paths, so a symlinked or `..`-spelled path does
 * not slip through.
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import { asError, reason } from "../core/error.ts";
import type { Backend } from "../engine/backend.ts";
import { localBackend } from "../backends/local/backend.ts";
import { isWithin, realPathOf } from "../core/paths.ts";

/** The paths a run works on. */
export interface Paths {
  readonly source: string;
  readonly replica: string;
  /** Undefined: no log file (`--log-file -`). */
  readonly logFile: string | undefined;
  readonly stateFile: string;
  /** `--backup-dir`, if given. */
  readonly backupDir?: string;
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
  });
  if (refused !== undefined) return refused;
  let real: Omit<Paths, "replica">;
  try {
    real = {
      source: realPathOf(source),
      logFile: logFile === undefined ? undefined : realPathOf(logFile),
      stateFile: realPathOf(stateFile),
    };
  } catch (error) {
    return `cannot resolve the paths: ${reason(asError(error))}.`;
  }
  if (real.logFile !== undefined && isWithin(real.logFile, real.source)) {
    return `--log-file: '${logFile}' is inside the source folder, where it would be mirrored.`;
  }
  if (isWithin(real.stateFile, real.source)) {
    return `--state-file: '${stateFile}' is inside the source folder, where it would be mirrored.`;
  }
  if (real.stateFile === real.logFile) return `--state-file: '${stateFile}' is the log file.`;
  for (const [flag, file] of [["--log-file", logFile], ["--state-file", stateFile]] as const) {
    if (file === undefined) continue;
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

/**
 * One writer per replica and per state file: an advisory `flock` held for
 * the whole run. The replica is locked on its root folder itself, so no lock
 * file is ever put in it; the state file is locked on itself. The kernel drops
 * a lock when its process dies, however it dies, so a lock left by a killed
 * run never blocks the next one.
 *
 * @module
 */

/** Another running process holds the lock. */
export class LockedError extends Error {
  override name = "LockedError";

  constructor(path: string) {
    super(`'${path}' is locked by another process`);
  }
}

/**
 * Take an exclusive lock on the open `file` (at `path`) without waiting.
 * (Which process holds it cannot be asked of the kernel here: Deno allows
 * reading `/proc/locks` only with `--allow-all`.)
 *
 * @throws {LockedError} when another process (or another open of the same
 * file in this one) holds it.
 */
export function lockOrThrow(file: Deno.FsFile, path: string): void {
  if (!file.tryLockSync(true)) throw new LockedError(path);
}

/**
 * Open the folder at `path` and lock it exclusively; closing the returned
 * file releases the lock.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LockedError, lockFolder } from "./lock.ts";
 * const dir = Deno.makeTempDirSync();
 * using held = lockFolder(dir);
 * assert.throws(() => lockFolder(dir), LockedError);
 * ```
 *
 * @throws {LockedError} when another process holds the lock.
 */
export function lockFolder(path: string): Deno.FsFile {
  const file = Deno.openSync(path, { read: true });
  try {
    lockOrThrow(file, path);
  } catch (error) {
    file.close();
    throw error;
  }
  return file;
}

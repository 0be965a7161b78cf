/**
 * One writer per replica and per state file: an advisory `flock` held for
 * the whole run. The replica is locked on its root folder itself, so no lock
 * file is ever put in it; the state file is locked on itself. Every folder
 * above the replica is locked too, shared: so no two mirrors write replicas
 * one inside the other ({@link lockAround}). The kernel drops
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
 * Deno.removeSync(dir, { recursive: true });
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

/** What {@link lockAround} found. */
export type AroundLock =
  /** The folders above were locked (shared); `unchecked`: some could not be opened (and why). */
  | { readonly held: readonly Deno.FsFile[]; readonly unchecked?: Error }
  /** A folder above is the replica of another running mirror (locked exclusively). */
  | { readonly inside: string };

/**
 * Take a shared lock on every folder above `path` (a real path, locked
 * exclusively by its mirror): a mirror whose replica is around another's
 * then cannot lock its own (the two locks conflict), and one whose replica is
 * inside another's cannot take these shared locks. Nested replicas are
 * refused whichever mirror starts second.
 *
 * @param path the replica root's real path.
 * @returns the locks (close them to release them), or the folder above that
 *   another mirror writes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lockAround, lockFolder } from "./lock.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.mkdirSync(`${dir}/inner`);
 * using outer = lockFolder(dir); // another mirror writes `dir`
 * assert.deepEqual(lockAround(`${dir}/inner`), { inside: dir });
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function lockAround(path: string): AroundLock {
  const held: Deno.FsFile[] = [];
  let unchecked: Error | undefined;
  for (let dir = parentPath(path); dir !== undefined; dir = parentPath(dir)) {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(dir, { read: true });
    } catch (error) {
      // Permissions scoped to the replica: the folders above cannot be checked.
      unchecked ??= error instanceof Error ? error : new Error(String(error));
      continue;
    }
    if (!file.tryLockSync(false)) {
      file.close();
      for (const other of held) other.close();
      return { inside: dir };
    }
    held.push(file);
  }
  return unchecked === undefined ? { held } : { held, unchecked };
}

/**
 * The folder below `path` that another running mirror writes (it holds an
 * exclusive lock on it), looked for breadth first among at most `limit`
 * folders; symlinks are not followed.
 *
 * @param path a folder's real path.
 * @param limit folders looked at, at most.
 * @returns the folder's path, or undefined when none was found.
 */
export function lockedBelow(path: string, limit = 10_000): string | undefined {
  const queue = [path];
  for (let next = 0; next < queue.length && next < limit; next++) {
    const dir = queue[next]!;
    let names: string[];
    try {
      names = [...Deno.readDirSync(dir)].filter((entry) => entry.isDirectory).map((e) => e.name);
    } catch {
      continue;
    }
    for (const name of names) {
      const below = dir === "/" ? `/${name}` : `${dir}/${name}`;
      try {
        using file = Deno.openSync(below, { read: true });
        if (!file.tryLockSync(false)) return below;
        file.unlockSync();
      } catch {
        continue; // unreadable, or gone meanwhile
      }
      queue.push(below);
    }
  }
  return undefined;
}

/** The folder above `path` (absolute), or undefined for the root. */
function parentPath(path: string): string | undefined {
  if (path === "/") return undefined;
  const at = path.lastIndexOf("/");
  return at <= 0 ? "/" : path.slice(0, at);
}

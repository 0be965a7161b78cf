/**
 * Copying one file, as plain data in and out, so that the same code runs on
 * the main thread and in the copy worker.
 *
 * @module
 */
import type { Disk } from "./disk.ts";
import { entryFromInfo, keyOf, type Owner } from "../../core/entry.ts";
import { checkSource, notCopied } from "../../core/source.ts";
import { asError } from "../../core/error.ts";
import type { WriteResult } from "../../core/replica.ts";

/** One file to copy. */
export interface CopyJob {
  /** Source file (absolute). */
  readonly from: string;
  /** Where the bytes are written (absolute): the target itself, or a temp name beside it. */
  readonly dest: string;
  /** The final name, when `dest` is a temp name to rename over it. */
  readonly target?: string;
  /** Size the source had when scanned. */
  readonly size: number;
  /** Mtime the source had when scanned (the copy gets it). */
  readonly mtimeMs: number;
  /** Permission bits the source had when scanned (the copy gets them). */
  readonly mode: number;
  /** The source's `statKey` when scanned: a different one afterwards means it changed. */
  readonly expectedKey: string;
  /**
   * Keep the source's holes (it is sparse).
   *
   * @default {false}
   */
  readonly sparse?: boolean;
  /**
   * Owner user and/or group to give the copy, where allowed.
   *
   * @default none
   */
  readonly owner?: Owner;
}

/** How a copy ended (see `replica.ts`). */
export type CopyResult = WriteResult;

/**
 * Copy `job.from` to `job.dest`, set the mtime, check that the source did not
 * change meanwhile (else discard the copy), and rename into place if asked.
 * The written file is removed on any failure. `signal` stops a copy that
 * waits for its bytes (`--bwlimit`).
 */
export function copyFile(
  disk: Pick<
    Disk,
    "copyFile" | "utime" | "lstat" | "rename" | "remove" | "chown" | "chmod" | "truncate"
  >,
  job: CopyJob,
  signal?: AbortSignal,
): CopyResult | Promise<CopyResult> {
  const finish = (md5: string | void): CopyResult => {
    // Not allowed (not root, not in that group): the copy stands.
    const ownerRefused = job.owner === undefined
      ? undefined
      : chownAsAllowed(disk, job.dest, job.owner);
    // A change of owner clears the set-user-id and set-group-id bits, and a
    // sparse copy is made private: the mode is set last.
    if (job.owner !== undefined || job.sparse) disk.chmod(job.dest, job.mode);
    disk.utime(job.dest, new Date(), new Date(job.mtimeMs));
    const check = checkSource(job.from, job.expectedKey, disk.lstat);
    if (check !== "same") {
      // Same file, only longer: perhaps appended to. The copy is kept, cut to
      // the size listed, for its first bytes to be proven unchanged (`keepPrefix`).
      if (check === "grew") disk.truncate(job.dest, job.size);
      else removeQuietly(disk, job.dest);
      return notCopied(check);
    }
    if (job.target !== undefined) disk.rename(job.dest, job.target);
    const written = entryFromInfo(disk.lstat(job.target ?? job.dest));
    // Someone else's write between the rename and this lstat: not vouched for.
    const intact = written.size === job.size && written.mtimeMs === job.mtimeMs;
    return {
      status: "done",
      ...(intact ? { key: keyOf(written) } : {}),
      ...(ownerRefused ? { ownerRefused } : {}),
      ...(md5 ? { md5 } : {}),
    };
  };
  const fail = (error: unknown): CopyResult => {
    removeQuietly(disk, job.dest);
    if (error instanceof Deno.errors.NotFound && !exists(disk, job.from)) return notCopied("gone");
    const { name, message } = error instanceof Error ? error : new Error(String(error));
    return { status: "failed", name, message };
  };
  const guarded = (md5: string | void) => {
    try {
      return finish(md5);
    } catch (error) {
      return fail(error);
    }
  };
  try {
    const copying = disk.copyFile(job.from, job.dest, job.size, job.sparse, signal);
    return copying instanceof Promise ? copying.then(guarded, fail) : guarded(copying);
  } catch (error) {
    return fail(error);
  }
}

/**
 * A copy whose source grew while it was copied (a log being appended to) was
 * kept, cut to the size listed (`grew` of {@link copyFile}): when its MD5 is
 * the MD5 of the source's first bytes now, what it holds was not changed
 * meanwhile, and it is put in place (with the mtime and mode listed), `done`
 * with `prefix` set and no key (the pair is not recorded as in step: the next
 * cycle copies the rest). Otherwise it is removed and the copy `skipped`.
 *
 * @param disk the disk to write through.
 * @param job the copy whose source grew.
 * @param md5 the MD5 (hex) of the first `length` bytes of the file at `path`.
 * @returns how it ended.
 */
export async function keepPrefix(
  disk: Pick<Disk, "utime" | "lstat" | "rename" | "remove">,
  job: CopyJob,
  md5: (path: string, length: number) => Promise<string>,
): Promise<CopyResult> {
  try {
    const copied = await md5(job.dest, job.size);
    if (disk.lstat(job.dest).size !== job.size || await md5(job.from, job.size) !== copied) {
      removeQuietly(disk, job.dest);
      return notCopied("changed");
    }
    disk.utime(job.dest, new Date(), new Date(job.mtimeMs)); // the cut changed it
    if (job.target !== undefined) disk.rename(job.dest, job.target);
    return { status: "done", prefix: true };
  } catch (error) {
    removeQuietly(disk, job.dest);
    if (error instanceof Deno.errors.NotFound && !exists(disk, job.from)) return notCopied("gone");
    const { name, message } = asError(error);
    return { status: "failed", name, message };
  }
}

/**
 * Give `path` the owner user and/or group `owner` asks for, as far as allowed:
 * when both are refused together, the group alone is tried. Returns the part
 * that was refused, or undefined when all was given.
 */
export function chownAsAllowed(
  disk: Pick<Disk, "chown">,
  path: string,
  owner: { readonly uid?: number; readonly gid?: number },
): { uid?: number; gid?: number } | undefined {
  const attempt = (uid: number | undefined, gid: number | undefined) => {
    try {
      disk.chown(path, uid ?? null, gid ?? null);
      return true;
    } catch (error) {
      // EPERM, or EINVAL for an id a user namespace does not map: refused.
      if (error instanceof Deno.errors.NotFound) throw error;
      return false;
    }
  };
  if (attempt(owner.uid, owner.gid)) return undefined;
  if (owner.uid === undefined || owner.gid === undefined) return owner;
  return attempt(undefined, owner.gid) ? { uid: owner.uid } : owner;
}

/** Whether `path` exists (without following a symlink). */
export function exists(disk: Pick<Disk, "lstat">, path: string): boolean {
  try {
    disk.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Remove `path`, ignoring that it is gone or was never created. */
export function removeQuietly(
  disk: Pick<Disk, "remove">,
  path: string,
  recursive = false,
): void {
  try {
    disk.remove(path, recursive);
  } catch {
    // Already gone, or never created.
  }
}

/**
 * The file-system operations that change the replica, behind one small
 * interface so tests can inject faults (EACCES, ENOSPC, a file vanishing)
 * without a broken disk.
 *
 * The calls are synchronous: Deno's sync file-system calls cost a fraction of
 * the async ones, and the per-file work is a handful of them. Only copying a
 * big file goes to a background thread (and may return a promise), so that
 * several big copies run at once and the program stays responsive.
 *
 * @module
 */
import type { Rate } from "../../core/rate.ts";
import { BIG_FILE } from "../../core/replica.ts";

/** Every write the program makes goes through one of these. */
export interface Disk {
  /**
   * Copy a regular file's bytes and permission bits (kernel copy where
   * possible).
   *
   * @param from the file to copy.
   * @param to where the copy is made (replaced if it exists).
   * @param size the file's size, as listed (a big file is copied in the background).
   * @param sparse keep the file's holes.
   * @param signal stops a copy that waits for its bytes (a paced disk's: it then rejects).
   * @returns nothing, or a promise that settles once a background copy is
   * done; the MD5 (hex) of the bytes copied when they passed through the
   * program (a sparse copy).
   */
  copyFile(
    from: string,
    to: string,
    size: number,
    sparse?: boolean,
    signal?: AbortSignal,
  ): void | string | Promise<void | string>;
  /**
   * Cut a file to `length` bytes.
   *
   * @param path the file.
   * @param length its new length.
   */
  truncate(path: string, length: number): void;
  /**
   * Set permission bits.
   *
   * @param path the entry to change.
   * @param mode the new permission bits.
   */
  chmod(path: string, mode: number): void;
  /**
   * Set access and modification times.
   *
   * @param path the entry to change.
   * @param atime the new access time.
   * @param mtime the new modification time.
   */
  utime(path: string, atime: Date, mtime: Date): void;
  /**
   * Set the owner user and/or group; follows symlinks.
   *
   * @param path the entry to change.
   * @param uid the new owner user (null: unchanged).
   * @param gid the new owner group (null: unchanged).
   */
  chown(path: string, uid: number | null, gid: number | null): void;
  /**
   * Set a symlink's own owner user and/or group.
   *
   * @param path the symlink to change.
   * @param uid the new owner user (null: unchanged).
   * @param gid the new owner group (null: unchanged).
   */
  lchown(path: string, uid: number | null, gid: number | null): Promise<void>;
  /**
   * Set a symlink's own modification time (and access time).
   *
   * @param path the symlink to change.
   * @param mtime the new modification time.
   */
  lutime(path: string, mtime: Date): Promise<void>;
  /**
   * Rename atomically within one file system, replacing a non-folder target.
   *
   * @param from the entry to rename.
   * @param to its new path.
   */
  rename(from: string, to: string): void;
  /**
   * Remove a file, symlink or (with `recursive`) folder; never follows symlinks.
   *
   * @param path the entry to remove.
   * @param recursive remove a folder with all it holds.
   */
  remove(path: string, recursive: boolean): void;
  /**
   * Create a folder.
   *
   * @param path the folder to create.
   * @param recursive create its missing parents too (and accept an existing folder).
   */
  mkdir(path: string, recursive: boolean): void;
  /**
   * Create a symlink at `path` whose text is `target`.
   *
   * @param target the symlink's text.
   * @param path where the symlink is created.
   */
  symlink(target: string, path: string): void;
  /**
   * Make `path` another name of the file `existing` (a hard link).
   *
   * @param existing the file.
   * @param path the new name (nothing may be there).
   */
  link(existing: string, path: string): void;
  /**
   * Metadata of `path` itself (symlinks not followed).
   *
   * @param path the entry to examine.
   * @returns the entry's metadata, as `Deno.lstatSync` gives it.
   */
  lstat(path: string): Deno.FileInfo;
  /**
   * Create or replace a file holding `data`.
   *
   * @param path the file to write.
   * @param data its whole content.
   */
  writeFile(path: string, data: Uint8Array): void;
}

/** The real disk, through Deno's own calls. */
export const realDisk: Disk = {
  copyFile: (from, to, size, sparse) =>
    sparse
      ? copySparse(from, to)
      : size >= BIG_FILE
      ? Deno.copyFile(from, to)
      : Deno.copyFileSync(from, to),
  truncate: (path, length) => Deno.truncateSync(path, length),
  chown: (path, uid, gid) => Deno.chownSync(path, uid, gid),
  lchown: async (path, uid, gid) => {
    // node:fs takes ~40 ms to load: only when a symlink's owner is to be set.
    const { lchownSync } = await import("node:fs");
    lchownSync(path, uid ?? -1, gid ?? -1);
  },
  lutime: async (path, mtime) => {
    // node:fs is loaded only when a symlink's mtime is to be set.
    const { lutimesSync } = await import("node:fs");
    lutimesSync(path, mtime, mtime);
  },
  chmod: (path, mode) => Deno.chmodSync(path, mode),
  utime: (path, atime, mtime) => Deno.utimeSync(path, atime, mtime),
  rename: (from, to) => Deno.renameSync(from, to),
  remove: (path, recursive) => Deno.removeSync(path, { recursive }),
  mkdir: (path, recursive) => Deno.mkdirSync(path, { recursive }),
  symlink: (target, path) => Deno.symlinkSync(target, path),
  link: (existing, path) => Deno.linkSync(existing, path),
  lstat: (path) => Deno.lstatSync(path),
  writeFile: (path, data) => Deno.writeFileSync(path, data),
};

/**
 * The real disk, with the bytes of every copy taken from `rate` first
 * (`--bwlimit`): a file of one piece ({@link Rate.chunk}) at most waits for
 * its bytes, then the kernel copies it; a bigger one is copied a piece at a
 * time through the program (the kernel's copy cannot be paced); a sparse one
 * as ever, its written runs paced. The replica then copies on the main thread
 * only: its worker's kernel copies cannot be paced, and under a limit the rate
 * bounds the copying, not a core (one thread copies ~100 MB/s of 4 KiB files:
 * FACTS.md).
 *
 * @param rate the run's limit.
 * @returns the disk.
 */
export function pacedDisk(rate: Rate): Disk {
  return {
    ...realDisk,
    copyFile: (from, to, size, sparse, signal) =>
      sparse
        ? copySparse(from, to, rate, signal)
        : size <= rate.chunk
        ? rate.take(size, signal).then(() => Deno.copyFileSync(from, to))
        : copyPaced(from, to, rate, signal),
  };
}

/** Copy a file a piece at a time, each piece's bytes taken from `rate` first; its mode kept. */
async function copyPaced(
  from: string,
  to: string,
  rate: Rate,
  signal: AbortSignal | undefined,
): Promise<void> {
  using source = await Deno.open(from, { read: true });
  using dest = await Deno.open(to, { write: true, create: true, truncate: true, mode: 0o600 });
  const buffer = new Uint8Array(rate.chunk);
  for (let n = await source.read(buffer); n !== null; n = await source.read(buffer)) {
    await rate.take(n, signal);
    await writeAll(dest, buffer.subarray(0, n));
  }
  // As the kernel's copy does: the source's permission bits.
  await Deno.chmod(to, (await source.stat()).mode! & 0o7777);
}

/** Write all of `bytes` at the file's position. */
async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
}

const CHUNK = 1 << 20;
const BLOCK = 4096;

/**
 * Copy a file, keeping its holes: blocks of zeros are not written but skipped
 * (`rsync -S`, `cp --sparse=always`), and the size is set at the end. Deno has
 * no `SEEK_DATA`, so the holes are read (as zeros, from no disk). The copy is
 * made with mode 0600; the caller sets the source's. Returns the MD5 (hex) of
 * what it read. With `rate`, the bytes written are taken from it first.
 */
async function copySparse(
  from: string,
  to: string,
  rate?: Rate,
  signal?: AbortSignal,
): Promise<string> {
  const { createHash } = await import("node:crypto");
  const hash = createHash("md5");
  using source = await Deno.open(from, { read: true });
  // Private until the copy is done: its mode is set after (see `copy.ts`).
  using dest = await Deno.open(to, { write: true, create: true, truncate: true, mode: 0o600 });
  const buffer = new Uint8Array(CHUNK);
  const words = new Uint32Array(buffer.buffer);
  let offset = 0;
  for (let n = await source.read(buffer); n !== null; n = await source.read(buffer)) {
    hash.update(buffer.subarray(0, n));
    // Write the runs of blocks that are not all zeros; seek over the others.
    for (let at = 0; at < n;) {
      const start = at;
      const zero = isZero(buffer, words, at, Math.min(n, at + BLOCK));
      while (at < n && isZero(buffer, words, at, Math.min(n, at + BLOCK)) === zero) at += BLOCK;
      at = Math.min(at, n);
      if (!zero) {
        await dest.seek(offset + start, Deno.SeekMode.Start);
        const chunk = buffer.subarray(start, at);
        await rate?.take(chunk.length, signal);
        await writeAll(dest, chunk);
      }
    }
    offset += n;
  }
  await dest.truncate(offset);
  return hash.digest("hex");
}

/** Whether bytes [from, to) are all zero (`from` a multiple of 4; `words` the same buffer). */
function isZero(bytes: Uint8Array, words: Uint32Array, from: number, to: number): boolean {
  const whole = from + ((to - from) & ~3);
  for (let i = from >> 2; i < whole >> 2; i++) if (words[i] !== 0) return false;
  for (let i = whole; i < to; i++) if (bytes[i] !== 0) return false;
  return true;
}

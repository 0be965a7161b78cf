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

/** Files at least this big are copied in the background. */
export const BIG_FILE = 1 << 20;

/** Every write the program makes goes through one of these. */
export interface Disk {
  /** Copy a regular file's bytes and permission bits (kernel copy where possible). */
  copyFile(from: string, to: string, size: number): void | Promise<void>;
  /** Set permission bits. */
  chmod(path: string, mode: number): void;
  /** Set access and modification times. */
  utime(path: string, atime: Date, mtime: Date): void;
  /** Rename atomically within one file system, replacing a non-folder target. */
  rename(from: string, to: string): void;
  /** Remove a file, symlink or (with `recursive`) folder; never follows symlinks. */
  remove(path: string, recursive: boolean): void;
  /** Create a folder; with `recursive`, its missing parents too. */
  mkdir(path: string, recursive: boolean): void;
  /** Create a symlink at `path` whose text is `target`. */
  symlink(target: string, path: string): void;
  /** Metadata of `path` itself (symlinks not followed). */
  lstat(path: string): Deno.FileInfo;
  /** Create or replace a file holding `data`. */
  writeFile(path: string, data: Uint8Array): void;
}

/** The real disk, through Deno's own calls. */
export const realDisk: Disk = {
  copyFile: (from, to, size) =>
    size >= BIG_FILE ? Deno.copyFile(from, to) : Deno.copyFileSync(from, to),
  chmod: (path, mode) => Deno.chmodSync(path, mode),
  utime: (path, atime, mtime) => Deno.utimeSync(path, atime, mtime),
  rename: (from, to) => Deno.renameSync(from, to),
  remove: (path, recursive) => Deno.removeSync(path, { recursive }),
  mkdir: (path, recursive) => Deno.mkdirSync(path, { recursive }),
  symlink: (target, path) => Deno.symlinkSync(target, path),
  lstat: (path) => Deno.lstatSync(path),
  writeFile: (path, data) => Deno.writeFileSync(path, data),
};

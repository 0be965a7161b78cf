/**
 * The file-system operations that change the replica, behind one small
 * interface so tests can inject faults (EACCES, ENOSPC, a file vanishing)
 * without a broken disk.
 *
 * @module
 */

/** Every write the program makes goes through one of these. */
export interface Disk {
  /** Copy a regular file's bytes (kernel copy where possible). */
  copyFile(from: string, to: string): Promise<void>;
  /** Set permission bits. */
  chmod(path: string, mode: number): Promise<void>;
  /** Set access and modification times. */
  utime(path: string, atime: Date, mtime: Date): Promise<void>;
  /** Rename atomically within one file system, replacing a non-folder target. */
  rename(from: string, to: string): Promise<void>;
  /** Remove a file, symlink or (with `recursive`) folder; never follows symlinks. */
  remove(path: string, recursive: boolean): Promise<void>;
  /** Create a folder; with `recursive`, its missing parents too. */
  mkdir(path: string, recursive: boolean): Promise<void>;
  /** Create a symlink at `path` whose text is `target`. */
  symlink(target: string, path: string): Promise<void>;
  /** Metadata of `path` itself (symlinks not followed). */
  lstat(path: string): Promise<Deno.FileInfo>;
}

/** The real disk, through Deno's own calls. */
export const realDisk: Disk = {
  copyFile: (from, to) => Deno.copyFile(from, to),
  chmod: (path, mode) => Deno.chmod(path, mode),
  utime: (path, atime, mtime) => Deno.utime(path, atime, mtime),
  rename: (from, to) => Deno.rename(from, to),
  remove: (path, recursive) => Deno.remove(path, { recursive }),
  mkdir: (path, recursive) => Deno.mkdir(path, { recursive }),
  symlink: (target, path) => Deno.symlink(target, path),
  lstat: (path) => Deno.lstat(path),
};

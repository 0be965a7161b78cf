/**
 * The records every stage shares: one {@link Entry} per file-system object,
 * keyed by its path relative to the tree's root (`/`-separated, never starting
 * with `/`, the root itself excluded).
 *
 * @module
 */

/** What a path is. `other` covers FIFOs, sockets and device files. */
export type Kind = "file" | "dir" | "symlink" | "other";

/** How messages name each kind of entry (capitalised; `toLowerCase()` mid-sentence). */
export const NOUN: Readonly<Record<Kind, string>> = {
  file: "File",
  dir: "Folder",
  symlink: "Symlink",
  other: "Special file",
};

/** One scanned file-system object. Times are epoch milliseconds. */
export interface Entry {
  /** What the object is. */
  readonly kind: Kind;
  /** Size in bytes (of a file; what `lstat` says for the others). */
  readonly size: number;
  /** Last change of the content. */
  readonly mtimeMs: number;
  /** Last change of the content or the inode; Deno reports it in whole
   * seconds (see {@link isSettled}). */
  readonly ctimeMs: number;
  /** Inode number. */
  readonly ino: number;
  /** Permission bits (`mode & 0o7777`). */
  readonly mode: number;
  /** Link text, for symlinks only. */
  readonly target?: string;
  /** Owner user id (absent where unknown). */
  readonly uid?: number;
  /** Owner group id (absent where unknown). */
  readonly gid?: number;
  /** Space allocated, in 512-byte blocks (less than the size: a sparse file). */
  readonly blocks?: number;
  /** The device it is on (where told: a `stat`, not a listing). */
  readonly dev?: number;
  /** Its names (hard links), where the tree tells (a local one does). */
  readonly nlink?: number;
}

/**
 * Path (relative to the root) -> entry, in the scan's order. A `Map` is one;
 * scans make a `PackedTree` (see `tree.ts`), which holds a million entries in
 * a fraction of the memory.
 */
export interface Tree {
  /** How many entries. */
  readonly size: number;
  /**
   * The entry at `path`, if any.
   *
   * @param path the entry's path relative to the root.
   * @returns the entry, or undefined when the tree has none there.
   */
  get(path: string): Entry | undefined;
  /**
   * The paths, in the scan's order.
   *
   * @returns the paths relative to the root.
   */
  keys(): Iterable<string>;
  /**
   * The paths and their entries, in the scan's order.
   *
   * @returns `[path, entry]` pairs.
   */
  [Symbol.iterator](): Iterator<[string, Entry]>;
}

/** Ids to give an entry: an owner user, a group, or both. */
export interface Owner {
  /** User id. */
  readonly uid?: number;
  /** Group id. */
  readonly gid?: number;
}

/** Convert `Deno.lstat` output to an {@link Entry}. */
export function entryFromInfo(info: Deno.FileInfo, target?: string): Entry {
  const kind: Kind = info.isFile
    ? "file"
    : info.isDirectory
    ? "dir"
    : info.isSymlink
    ? "symlink"
    : "other";
  return {
    kind,
    size: info.size,
    mtimeMs: info.mtime?.getTime() ?? 0,
    ctimeMs: info.ctime?.getTime() ?? 0,
    ino: info.ino ?? 0,
    mode: (info.mode ?? 0) & 0o7777,
    ...(target === undefined ? {} : { target }),
    ...(info.uid === null ? {} : { uid: info.uid }),
    ...(info.gid === null ? {} : { gid: info.gid }),
    ...(info.blocks === null ? {} : { blocks: info.blocks }),
    ...(info.dev === null ? {} : { dev: info.dev }),
    ...(info.nlink === null ? {} : { nlink: info.nlink }),
  };
}

/** Whether a file has holes worth keeping: much less space allocated than its size. */
export function isSparse(entry: Entry): boolean {
  return entry.blocks !== undefined && entry.blocks * 512 + 64 * 1024 < entry.size;
}

/**
 * The identity of a file's content as far as metadata can tell: while this
 * string is unchanged (and {@link isSettled} held when it was recorded), the
 * content is trusted to be unchanged.
 */
export function statKey(entry: Entry): string {
  return `${entry.size}:${entry.mtimeMs}:${entry.ctimeMs}:${entry.ino}`;
}

/** The four numbers of a stat key: size, mtime, ctime, inode. */
export type StatKey = readonly [number, number, number, number];

/** An entry's {@link StatKey}. */
export function keyOf(entry: Entry): StatKey {
  return [entry.size, entry.mtimeMs, entry.ctimeMs, entry.ino];
}

/**
 * Whether a key observed at `observedAtMs` can be trusted later. The ctime has
 * one-second resolution, so a write in the same second as the observation
 * could leave the key unchanged (git's "racily clean" problem). Only once the
 * ctime's second is over before the observation is every later write
 * guaranteed to change the key.
 */
export function isSettled(entry: Entry, observedAtMs: number): boolean {
  return entry.ctimeMs + 1000 <= observedAtMs;
}

/**
 * Whether two mtimes are the same at `precision` (milliseconds): a replica
 * that keeps whole seconds (SFTP) holds the source's mtime cut to its second.
 *
 * @param a an mtime (epoch ms).
 * @param b another.
 * @param precision what the replica keeps, in ms (1: milliseconds).
 * @returns true when they agree as far as the replica can tell.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sameMtime } from "./entry.ts";
 * assert.ok(sameMtime(1_700_000_000_123, 1_700_000_000_000, 1000));
 * assert.ok(!sameMtime(1_700_000_000_123, 1_700_000_000_000));
 * ```
 */
export function sameMtime(a: number, b: number, precision = 1): boolean {
  return precision <= 1 ? a === b : Math.floor(a / precision) === Math.floor(b / precision);
}

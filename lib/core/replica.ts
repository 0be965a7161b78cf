/**
 * The two sides of a mirror, behind small interfaces, so that the engine
 * (walk, compare, plan, apply) never touches a file system itself and a
 * replica that is not a local folder (an object store) can take the local
 * folder's place.
 *
 * Both are shaped per folder, like rclone's `List(dir)`: a walk lists one
 * folder at a time and can pair the two trees folder by folder. Every method
 * may answer at once or with a promise; callers always `await` it.
 *
 * @module
 */
import type { Entry, Kind, Owner, StatKey } from "./entry.ts";

/**
 * Files from this size on are big: written in the background, several at a
 * time, each on its own (small ones go in batches), and read a chunk at a time.
 */
export const BIG_FILE = 1 << 20;

/** A value now, or later. */
export type MaybePromise<T> = T | Promise<T>;

/** The root folder of a tree, as found when a cycle starts. */
export interface RootInfo {
  /** The root folder itself. */
  readonly entry: Entry;
  /** The root's identity (a local folder: `device:inode`): another one means
   * another folder at that place (an unmounted disk shows its mount point). */
  readonly id: string;
  /** The root's real path, when the tree is a folder on this machine. */
  readonly path?: string;
}

/** One entry of a folder: its name and what it is. */
export interface Listed {
  /** The entry's name in its folder. */
  readonly name: string;
  /** What it is (a symlink's `target` included). */
  readonly entry: Entry;
}

/** One folder's entries. */
export interface Listing {
  /** The entries, sorted by name (`compareNames` of `paths.ts`). */
  readonly entries: readonly Listed[];
  /** Names that are there but could not be examined, and why (so the
   * listing is incomplete: nothing may be concluded from their absence). */
  readonly problems: readonly { readonly name: string; readonly error: Error }[];
}

/** A tree the mirror reads: the source, and the replica as it is. */
export interface TreeReader {
  /** Where the tree is, for messages (a path as the user gave it). */
  readonly where: string;
  /**
   * The mtime precision the tree keeps, in milliseconds (1000: whole
   * seconds, as SFTP): mtimes are compared at it.
   *
   * @default {1}
   */
  readonly mtimePrecision?: number;
  /** The root's real path, when the tree is a folder on this machine: as the
   * last {@link open} found it, or where it would be made when missing. */
  readonly path?: string;
  /**
   * Find the root folder now (a root given as a symlink is followed anew at
   * each call).
   *
   * @returns the root as found now, or undefined when it does not exist.
   * @throws {Error} when it exists but cannot be used (not a folder, no access).
   */
  open(): MaybePromise<RootInfo | undefined>;
  /**
   * The entries of the folder `dir` (`""`: the root), sorted by name.
   *
   * @param dir the folder's path relative to the root (`""`: the root).
   * @returns the folder's entries, and the names that could not be examined.
   * @throws {Error} when the folder cannot be listed at all (gone: `Deno.errors.NotFound`).
   */
  list(dir: string): MaybePromise<Listing>;
  /**
   * Start reading the tree ahead of a walk that lists its folders next,
   * depth-first, each folder's subfolders in name order (`compareNames`)
   * before its later siblings. Optional.
   */
  readAhead?(): void;
  /**
   * The walk that reads ahead will not list the folders `dirs` (nor anything
   * below them). Optional.
   *
   * @param dirs folder paths relative to the root.
   */
  skip?(dirs: readonly string[]): void;
  /**
   * The entry at `path` now (a symlink itself, not what it points to).
   *
   * @param path the entry's path relative to the root.
   * @returns the entry, or undefined when there is none.
   */
  stat(path: string): MaybePromise<Entry | undefined>;
  /**
   * The MD5 (hex) of the file at `path`, whose size was `size` when listed.
   * Stops (throwing the signal's reason) when `signal` aborts.
   *
   * @param path the file's path relative to the root.
   * @param size the file's size when it was listed.
   * @param signal stops the reading early.
   * @returns the file's MD5, in lowercase hex.
   */
  md5(path: string, size: number, signal?: AbortSignal): Promise<string>;
  /**
   * The comparisons of one folder are about to ask for the MD5s of `files`:
   * start computing them all (a batch on a remote host, reads in flight), so
   * that each {@link md5} call finds its answer. Optional.
   *
   * @param files the files' paths and sizes as listed.
   */
  prefetchMd5?(files: readonly { readonly path: string; readonly size: number }[]): void;
  /**
   * What names one file, where {@link stat}'s `ino` does not (an SSH
   * replica's stat keys carry a number of its own): the entries at `paths`
   * that exist, each kind with a number that every name of one file shares.
   * Optional: else `stat` is asked, one path at a time, for its `ino`.
   *
   * @param paths entry paths relative to the root.
   * @returns path -> its kind and file number (missing paths left out).
   */
  fileIds?(paths: readonly string[]): Promise<Map<string, FileId>>;
  /** Release what the tree holds (worker threads). Optional. */
  close?(): void;
}

/**
 * A folder on the replica's side (the same file system, bucket or host) that
 * keeps what cycles delete or overwrite (`--backup-dir`): one folder per full
 * cycle, named by the engine (see `core/backup_names.ts`), holding each
 * entry at its path in the replica.
 */
export interface Backups {
  /** How messages name it (as given). */
  readonly where: string;
  /**
   * Keep the replica's entry `path` in the cycle folder `folder`, at its
   * path there (a name taken there gets a numbered suffix, see
   * `backupPathOf`).
   *
   * @param path the entry's path relative to the replica's root.
   * @param how `move`: the entry leaves the replica (this is its deletion: a
   *   rename where it can be; else a copy, and the caller removes the entry);
   *   `copy`: a copy (a hard link where it can be) while it stays, to be
   *   overwritten next.
   * @param folder the cycle folder's name.
   * @param kind what the entry is, where the engine knows (a bucket has no
   *   `lstat` to ask).
   * @returns where it went; undefined when nothing was there.
   * @throws {Error} when it could not be kept (the entry is then as it was,
   *   and nothing is left in the backup folder).
   */
  keep(path: string, how: "move" | "copy", folder: string, kind?: Kind): Promise<Kept | undefined>;
  /**
   * Undo a {@link keep} whose deletion or overwrite did not happen (the
   * entry is still in the replica): what it made goes, with the folders it
   * leaves empty.
   *
   * @param name {@link Kept.name}.
   */
  discard(name: string): Promise<void>;
  /**
   * The names of the entries directly in the backup folder.
   *
   * @returns the names (none when it does not exist yet).
   */
  folders(): Promise<string[]>;
  /**
   * Remove the cycle folder `name`, with all it holds.
   *
   * @param name a name {@link folders} gave.
   */
  drop(name: string): Promise<void>;
}

/** Where {@link Backups.keep} put an entry. */
export interface Kept {
  /** Its path relative to the backup folder. */
  readonly name: string;
  /**
   * A `move` could only copy it (another file system, a bucket): it is still
   * in the replica, and the caller removes it.
   */
  readonly copied?: boolean;
}

/** What {@link TreeReader.fileIds} says of one entry. */
export interface FileId {
  /** What the entry is. */
  readonly kind: Kind;
  /** A number that every name of one file shares (its inode). */
  readonly id: number;
}

/** One file to write into the replica, from a source file. */
export interface FileWrite {
  /** Where, in the replica (an entry path). */
  readonly path: string;
  /** The source file to read (an absolute path on this machine). */
  readonly from: string;
  /** The source file's size, as listed. */
  readonly size: number;
  /** The source file's mtime, as listed (the copy gets it). */
  readonly mtimeMs: number;
  /** The source file's permission bits, as listed (the copy gets them). */
  readonly mode: number;
  /** The source's stat key as listed (see `statKey`): if it differs after
   * the copy, the source changed meanwhile and the copy is discarded. */
  readonly expectedKey: string;
  /**
   * The owner to give the copy, where allowed.
   *
   * @default none
   */
  readonly owner?: Owner;
  /**
   * Keep the source's holes (it is sparse).
   *
   * @default {false}
   */
  readonly sparse?: boolean;
}

/** How one file write ended. */
export type WriteResult =
  /** Written; `key`: the replica file's stat key as written (absent when
   * someone else changed it right after); `ownerRefused`: the part of the
   * owner asked for that could not be given (not a failure); `prefix`: the
   * source grew while it was copied, and what it held when it was listed
   * (its first `size` bytes, proven unchanged) was written: the next cycle
   * copies the rest; `md5`: the MD5 (hex) of the bytes written, when they
   * passed through the program (it is then known without reading the file). */
  | {
    readonly status: "done";
    readonly key?: StatKey;
    readonly ownerRefused?: Owner;
    readonly prefix?: boolean;
    readonly md5?: string;
  }
  /** Not written, for a reason the next cycle resolves (the source changed or
   * vanished; the run was stopped); `changed`: the source changed while it
   * was copied; `grew`: it is the same file, only longer (appended to, perhaps). */
  | {
    readonly status: "skipped";
    readonly reason: string;
    readonly changed?: boolean;
    readonly grew?: boolean;
    /** Not retried: the replica cannot hold it (see {@link Replica.refuses}). */
    readonly final?: boolean;
  }
  /** Failed (the replica keeps what it had). */
  | { readonly status: "failed"; readonly name: string; readonly message: string };

/** What a change of attributes asks for. */
export interface Attributes {
  /**
   * Permission bits.
   *
   * @default unchanged
   */
  readonly mode?: number;
  /**
   * Modification time.
   *
   * @default unchanged
   */
  readonly mtimeMs?: number;
  /**
   * Owner user and/or group, where allowed.
   *
   * @default unchanged
   */
  readonly owner?: Owner;
  /**
   * The entry as listed: if it changed since, the change is made but the
   * result vouches for no key.
   *
   * @default not checked
   */
  readonly expect?: Entry;
}

/** How a change of attributes ended (it throws when it failed). */
export interface AttributesResult {
  /** The entry's stat key after the change, when it is the entry expected. */
  readonly key?: StatKey;
  /** The part of the owner asked for that could not be given. */
  readonly ownerRefused?: Owner;
}

/**
 * A replica the mirror writes. Every change it makes is one of these calls;
 * each is atomic for readers of the replica: they never see a partial file.
 * A failure throws (a `WriteResult` reports it for files).
 */
export interface Replica extends TreeReader {
  /**
   * Make the replica's root folder, with its parents where it has them.
   *
   * @returns nothing, or a promise that settles once it is done.
   */
  makeRoot(): MaybePromise<void>;
  /**
   * Make the folder `path` with `mode` (the source's bits plus owner rwx, so
   * it can be filled; its own attributes are set last).
   *
   * @param path the new folder's path relative to the root.
   * @param mode the new folder's permission bits.
   * @returns nothing, or a promise that settles once it is done.
   */
  makeFolder(path: string, mode: number): MaybePromise<void>;
  /**
   * Make the new folder `path` out of readers' sight: what is written below
   * it until {@link Replica.commitFolder} appears at once. Optional: a
   * replica without it gets {@link Replica.makeFolder}.
   *
   * @param path the new folder's path relative to the root.
   * @param mode the new folder's permission bits.
   * @returns nothing, or a promise that settles once it is done.
   */
  beginFolder?(path: string, mode: number): MaybePromise<void>;
  /**
   * Put the folder begun at `path` in place.
   *
   * @param path the folder's path, as given to {@link Replica.beginFolder}.
   * @returns nothing, or a promise that settles once it is done.
   */
  commitFolder?(path: string): MaybePromise<void>;
  /**
   * Drop the folder begun at `path` and all written into it (a stopped run).
   *
   * @param path the folder's path, as given to {@link Replica.beginFolder}.
   * @returns nothing, or a promise that settles once it is done.
   */
  dropFolder?(path: string): MaybePromise<void>;
  /**
   * Write one file, atomically, from a source file; stops early when `signal`
   * aborts (then its partial copy is removed at once, and the result is
   * `skipped`).
   *
   * @param write the file to write and where.
   * @param signal stops the write early.
   * @returns how the write ended (it does not throw for a failed write).
   */
  writeFile(write: FileWrite, signal?: AbortSignal): MaybePromise<WriteResult>;
  /**
   * Write many small files at once, faster where the replica can (a second
   * thread, requests in flight). Optional: else one {@link Replica.writeFile}
   * after another. Rejects when the means it uses failed (then the caller
   * writes them one by one).
   *
   * @param writes the files to write.
   * @returns how each write ended, in the order of `writes`.
   */
  writeFiles?(writes: readonly FileWrite[]): Promise<WriteResult[]>;
  /**
   * Make (or replace) the symlink `path` with the text `target`, owned as
   * `owner` says where allowed, with the mtime `mtimeMs`.
   *
   * @param path the symlink's path relative to the root.
   * @param target the symlink's text.
   * @param owner the owner to give it, where allowed.
   * @param mtimeMs the symlink's own mtime (default: now).
   * @returns the part of the owner that was refused, or undefined when none was.
   */
  makeSymlink(
    path: string,
    target: string,
    owner?: Owner,
    mtimeMs?: number,
  ): MaybePromise<Owner | undefined>;
  /**
   * Set attributes of the entry `path` of `kind` (never through a symlink).
   *
   * @param path the entry's path relative to the root.
   * @param kind what the entry is expected to be.
   * @param attributes what to change; see {@link Attributes}.
   * @returns the entry's stat key after the change and the part of the owner refused.
   */
  setAttributes(
    path: string,
    kind: "file" | "dir" | "symlink",
    attributes: Attributes,
  ): MaybePromise<AttributesResult>;
  /**
   * Move the entry `from` of `kind` to `to`, where nothing is (a rename;
   * never through a symlink). Optional: a replica without it gets copies.
   *
   * @param from the entry's path relative to the root.
   * @param to its new path.
   * @param kind what it is.
   * @returns the stat key of a file at its new path, when it can be told.
   */
  move?(from: string, to: string, kind: "file" | "dir"): MaybePromise<StatKey | undefined>;
  /**
   * Whether {@link move} takes folders (a bucket has none to rename: it moves
   * files one by one). Default: true, where there is a `move`.
   */
  readonly movesFolders?: boolean;
  /**
   * Make the file `path` another name of the file `target` (a hard link),
   * replacing the file or symlink at `path`. Optional: a replica without it
   * holds each name as a file of its own.
   *
   * @param target the file's path relative to the root.
   * @param path the name to make.
   * @returns the file's stat key now.
   */
  link?(target: string, path: string): MaybePromise<StatKey>;
  /**
   * Remove the entry `path` of `kind` (a folder with all it holds). Gone
   * already is fine.
   *
   * @param path the entry's path relative to the root.
   * @param kind what the entry is.
   * @returns nothing, or a promise that settles once it is done.
   */
  remove(path: string, kind: Entry["kind"]): MaybePromise<void>;
  /**
   * Where what a cycle deletes or overwrites is kept (`--backup-dir`), when
   * the replica was opened with one. Optional.
   */
  readonly backups?: Backups;
  /**
   * The user and group an entry the replica makes belongs to (found out by
   * making one). Optional.
   *
   * @returns the user and group ids, or undefined when the replica has no
   * owners or finding out failed.
   */
  probeOwner?(): MaybePromise<{ readonly uid: number; readonly gid: number } | undefined>;
  /**
   * Whether writing the source file `entry` passes its bytes through the
   * program, so that the write learns its MD5 (`WriteResult`'s `md5`).
   * Optional: else never.
   *
   * @param entry the source file as listed.
   * @returns true when its copy learns its MD5.
   */
  learnsMd5?(entry: Entry): boolean;
  /**
   * Big files written at once at most (one connection carries them all:
   * more only holds more in memory). Optional: the engine's default (4).
   */
  readonly bigWritesAtOnce?: number;
  /**
   * Small writes are worth sending as batches from the first one (requests in
   * flight), not only when there are many. Optional.
   */
  readonly batched?: boolean;
  /**
   * Why a source entry at `path` of `kind` cannot be held by this replica
   * (it is then left out, with a warning, like an excluded one). Optional.
   *
   * @param path the source entry's path relative to the root.
   * @param kind what it is.
   * @returns the reason, or undefined when it can be mirrored.
   */
  refuses?(path: string, kind: Kind): string | undefined;
  /**
   * Whether `name` is one of the program's temp files in this replica (this
   * run's or an earlier one's). Optional: else the state decides.
   *
   * @param name a replica entry's name (not a path).
   * @returns true when it is one of the program's temp files.
   */
  isTemp?(name: string): boolean;
}

/**
 * Moves: a file or folder the source has at a new path, that the state knew
 * at an old path the source no longer has, is moved in the replica (one
 * rename) rather than copied again, as rclone's `--track-renames` pairs what
 * its march finds only in the source with what it finds only in the replica.
 * A policy over the walk's findings: the walk asks, for each entry only the
 * source holds, whether it is a move ({@link MoveFinder.find}).
 *
 * A move is made only where it can be proved safe; anything else is a copy,
 * as before:
 *
 * - the entry keeps its inode, size and mtime across a rename (its ctime
 *   changes): a folder whose mtime is not older than its ctime's second was
 *   made (or moved within the second it was made) and is not looked up (the
 *   files of a renamed folder keep their ctime: every file the replica lacks
 *   is looked up, by its inode); an entry on another device than the source
 *   root is not either;
 * - the state recorded that inode at the old path (each pair's source inode,
 *   each folder's), the source no longer has it there, and the replica still
 *   holds the old path exactly as the state recorded it;
 * - inodes are reused (tar, `cp -p` and rsync restore mtimes), so a file's
 *   content is proved: the source file is read and its MD5 must be the one
 *   the state recorded (where none was, the replica file is read too and the
 *   two must agree): a read, not a read and a write;
 * - a folder is one rename of the replica folder: what the state knows below
 *   it moves with it, and the walk then goes through it as through any
 *   folder both trees hold (files whose keys hold are not read). With
 *   `--exclude` no folder is moved (an excluded entry kept in it would then be
 *   at a path the pattern may not match).
 *
 * @module
 */
import { type Entry, sameMtime } from "../core/entry.ts";
import type { ExcludeMatcher } from "../core/exclude.ts";
import type { PairIndex } from "../state/pair_index.ts";
import type { Action } from "./plan.ts";
import type { Replica, TreeReader } from "../core/replica.ts";

/** What a {@link MoveFinder} looks through. */
export interface MoveOptions {
  /** The two trees. */
  readonly trees: { readonly source: TreeReader; readonly replica: Replica };
  /** What is known of the pairs (their source inodes). */
  readonly index: PairIndex;
  /** The source root's device (entries on another one are never moves). */
  readonly device?: number;
  /** `--exclude` (then no folder is moved). */
  readonly exclude?: ExcludeMatcher;
  /** Stops the reading of a file for its MD5. */
  readonly signal?: AbortSignal;
}

/**
 * Finds the moves of one cycle; see the module documentation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalReplica, LocalTree } from "../backends/local/local.ts";
 * import { MoveFinder } from "./moves.ts";
 * import { PairIndex } from "../state/pair_index.ts";
 * const dir = Deno.makeTempDirSync();
 * const finder = new MoveFinder({
 *   trees: { source: new LocalTree(`${dir}/src`), replica: new LocalReplica(`${dir}/rep`) },
 *   index: new PairIndex(),
 * });
 * const file = { kind: "file" as const, size: 1, mtimeMs: 0, ctimeMs: 5000, ino: 42, mode: 0o644 };
 * assert.equal(await finder.find("new.txt", file), undefined); // nothing known at inode 42
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class MoveFinder {
  readonly #options: MoveOptions;
  /** Old paths moved away this cycle (their removal is no longer due). */
  readonly #movedAway = new Set<string>();

  /** @param options see {@link MoveOptions}. */
  constructor(options: MoveOptions) {
    this.#options = options;
  }

  /**
   * How many entries were moved away from below the folder `dir` this cycle
   * (its removal does not take them: they are not counted as deletions).
   *
   * @param dir a replica folder's path.
   * @returns their number.
   */
  movedBelow(dir: string): number {
    let count = 0;
    for (const path of this.#movedAway) if (path.startsWith(`${dir}/`)) count++;
    return count;
  }

  /**
   * Whether `path` was moved away this cycle, or lies in a folder that was.
   *
   * @param path a replica path.
   * @returns true when it is no longer there to be removed.
   */
  movedAway(path: string): boolean {
    for (let at = path;; at = at.slice(0, at.lastIndexOf("/"))) {
      if (this.#movedAway.has(at)) return true;
      if (!at.includes("/")) return false;
    }
  }

  /**
   * The move of the replica entry that the source's entry at `path` (one
   * the replica lacks) was moved from, if one can be proved.
   *
   * @param path the entry's path relative to the roots.
   * @param entry the source entry as listed (a file or a folder).
   * @returns the move action, or undefined: copy it.
   */
  async find(path: string, entry: Entry): Promise<Action | undefined> {
    const { trees, index } = this.#options;
    if (trees.replica.move === undefined) return undefined;
    if (entry.kind !== "file" && entry.kind !== "dir") return undefined;
    if (entry.kind === "dir") {
      // A folder renamed keeps its mtime and gets a new ctime (whose second is
      // all Deno tells); one just made has both alike, and is not looked up.
      if (entry.mtimeMs >= entry.ctimeMs) return undefined;
      if (this.#options.exclude !== undefined) return undefined;
      // Where folders cannot be moved, the walk goes in and moves their files.
      if (trees.replica.movesFolders === false) return undefined;
    }
    // (A file in a renamed folder keeps its ctime: every file is looked up.)
    const olds =
      (entry.kind === "dir"
        ? [index.folderOfInode(entry.ino)].filter((dir) => dir !== undefined)
        : index.pathsOfInode(entry.ino)).filter((from) =>
          from !== path && from !== "" && !this.movedAway(from) &&
          !(entry.kind === "dir" && (path.startsWith(`${from}/`) || from.startsWith(`${path}/`)))
        );
    if (olds.length === 0) return undefined;
    const now = await trees.source.stat(path);
    if (now === undefined || now.ino !== entry.ino || now.kind !== entry.kind) return undefined;
    const device = this.#options.device;
    if (device !== undefined && now.dev !== undefined && now.dev !== device) return undefined;
    for (const from of olds) {
      const proved = await this.#movable(from, path, entry);
      if (proved === undefined) continue;
      this.#movedAway.add(from);
      return { op: "move", path, from, kind: entry.kind, source: entry, ...proved };
    }
    return undefined;
  }

  /**
   * The replica entry at `from`, when the source's `entry` (at `path` now)
   * can be proved to be the one the state knew there.
   */
  async #movable(
    from: string,
    path: string,
    entry: Entry,
  ): Promise<{ replica: Entry; md5?: string } | undefined> {
    const { trees, index, signal } = this.#options;
    let left: Entry | undefined;
    try {
      left = await trees.source.stat(from);
    } catch {
      return undefined; // cannot tell (a folder that may not be read): a copy
    }
    // Still there under its old name: a second name of the same file (a hard link).
    if (left?.ino === entry.ino) return undefined;
    // A folder the source has again at the old path (made anew there): the replica's stays,
    // to be compared with it (as a full cycle finds it, having walked it first); what moved
    // below it moves file by file.
    if (entry.kind === "dir" && left?.kind === "dir") return undefined;
    const replica = await Promise.resolve(trees.replica.stat(from)).catch(() => undefined);
    if (replica?.kind !== entry.kind) return undefined;
    if (entry.kind === "dir") return { replica };
    // The replica file is the copy the state recorded, unchanged since.
    if (!index.knows(from, "replica", replica)) return undefined;
    const precision = trees.replica.mtimePrecision;
    if (replica.size !== entry.size || !sameMtime(replica.mtimeMs, entry.mtimeMs, precision)) {
      return undefined;
    }
    // Inodes are reused: the content is proved (the replica's read only where
    // the state knows no MD5).
    try {
      const md5 = await trees.source.md5(path, entry.size, signal);
      const expected = index.md5(from) ?? await trees.replica.md5(from, replica.size, signal);
      return md5 === expected ? { replica, md5 } : undefined;
    } catch (error) {
      if (signal?.aborted) throw error;
      return undefined;
    }
  }
}

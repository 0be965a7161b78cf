/**
 * Hard links: a source file with several names (its link count above 1) is
 * one file with the same names in the replica, as `rsync -aH` keeps it. A
 * policy over the walk's findings, as `moves.ts` is:
 *
 * - the walk meets a group's names one by one: the first name whose replica
 *   file is (or is proved to be) the source's content leads the group; it is
 *   compared and copied as any file. Every other name is not written during
 *   the walk: once every other write is done, it is made another name of the
 *   leader's replica file (a link under a temporary name, renamed over what is
 *   there), unless it already is one;
 * - a name the state recorded for the same source inode, or an earlier
 *   cycle of the run met in its group (a pair is not recorded while its key
 *   is too new to trust), that the walk has not met (a `--watch` cycle walks
 *   only some folders), is found so: it can lead the group (where its replica file is known or proved
 *   to hold the content), and it is linked like the names the walk met;
 * - a replica file is rewritten on its own when its source name left a group
 *   (the source's name now has another inode than the state recorded, and
 *   the replica's file has other names; where the state recorded none, when
 *   the replica's file has more names than the source's): otherwise its
 *   other names would keep sharing its content and attributes. A replica
 *   file the user linked elsewhere (a snapshot made with `cp -al`) is left
 *   alone while the state knows its pair;
 * - names whose other names are all outside the source cost one lookup each
 *   (a snapshot made with `cp -al` holds many); nothing else is kept for them;
 * - a `--watch` cycle that meets a file with several names, changed since the
 *   last full cycle, and cannot find all its names (a name it has no record
 *   of yet: a file copied in its own ctime second is not recorded), asks for
 *   a full cycle, which finds every name.
 *
 * The state keeps no table of groups: each pair's source inode (kept for
 * moves) is enough to find a name's other names; the run keeps the groups
 * with several names it met, in memory.
 *
 * @module
 */
import { comparePair } from "./compare.ts";
import type { Entry } from "../core/entry.ts";
import { type ExcludeMatcher, isExcludedFolder } from "../core/exclude.ts";
import type { PairIndex } from "../state/pair_index.ts";
import { parentOf } from "../core/paths.ts";
import type { Action } from "./plan.ts";
import type { FileId, TreeReader } from "../core/replica.ts";

/** What a {@link HardLinks} looks through. */
export interface HardLinkOptions {
  /** The two trees (a replica's names of one file told by its `fileIds`, else by `stat`). */
  readonly trees: { readonly source: TreeReader; readonly replica: TreeReader };
  /** What is known of the pairs (their source inodes, keys and MD5s). */
  readonly index: PairIndex;
  /** `--exclude`: an excluded name is never linked nor leads. */
  readonly exclude?: ExcludeMatcher;
  /** When the walk started (a key too new is not trusted). */
  readonly observedAt: number;
  /** Stops the reading of a file. */
  readonly signal?: AbortSignal;
  /**
   * The groups of names earlier cycles of this run met (source inode -> its
   * names), kept up to date by {@link HardLinks.linked}: a name's pair is
   * not recorded in the state while its key is too new to trust (a link just
   * made changes the file's ctime), yet a `--watch` cycle must find it.
   */
  readonly memory?: Map<number, readonly string[]>;
  /**
   * A partial walk (`--watch`): when the last full cycle started (epoch ms).
   * A file with several names changed since, whose other names this walk
   * cannot all find, makes {@link HardLinks.actions} ask for a full cycle.
   */
  readonly changedSince?: number;
}

/** One file with several names, as this cycle met it. */
interface Group {
  /** The file's link count and ctime, as the walk first met it. */
  readonly nlink: number;
  readonly ctimeMs: number;
  /** The name written as any file; the others are linked to it. */
  leader: string;
  /** The other names, with their source entries. */
  others?: Map<string, Entry>;
  /** A dry run: the leader would be written. */
  planned?: boolean;
  /** A name was to be linked (or copied) this cycle. */
  changed?: boolean;
}

/**
 * Keeps the hard links of one cycle; see the module documentation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HardLinks } from "./links.ts";
 * import { LocalReplica, LocalTree } from "../backends/local/local.ts";
 * import { PairIndex } from "../state/pair_index.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.mkdirSync(`${dir}/src`);
 * Deno.writeTextFileSync(`${dir}/src/a`, "same file");
 * Deno.linkSync(`${dir}/src/a`, `${dir}/src/b`);
 * const trees = { source: new LocalTree(`${dir}/src`), replica: new LocalReplica(`${dir}/rep`) };
 * const links = new HardLinks({ trees, index: new PairIndex(), observedAt: Date.now() });
 * const a = (await trees.source.stat("a"))!, b = (await trees.source.stat("b"))!;
 * assert.equal(await links.joins("a", a), false); // leads: copied as any file
 * assert.equal(await links.joins("b", b), true); // linked to "a" at the end
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class HardLinks {
  readonly #options: HardLinkOptions;
  /** Source inode -> the group met this cycle. */
  readonly #groups = new Map<number, Group>();

  /** @param options see {@link HardLinkOptions}. */
  constructor(options: HardLinkOptions) {
    this.#options = options;
  }

  /**
   * During the walk: the source file `entry` at `path` has several names.
   *
   * @param path its path relative to the roots.
   * @param entry the source file as listed.
   * @returns true when it is another name of a file met or known before: it
   *   is not written now, but linked by {@link actions}; false when it leads
   *   its group (compare and copy it as any file).
   */
  async joins(path: string, entry: Entry): Promise<boolean> {
    const group = this.#groups.get(entry.ino);
    if (group !== undefined) {
      if (group.leader === path) return false;
      (group.others ??= new Map()).set(path, entry);
      return true;
    }
    // The first name met: a name the state knows for the file may lead.
    const found: Group = { nlink: entry.nlink ?? 1, ctimeMs: entry.ctimeMs, leader: path };
    this.#groups.set(entry.ino, found);
    for (const [other, now] of await this.#known(entry.ino, path)) {
      if (found.leader === path && await this.#holds(other, now)) found.leader = other;
      else (found.others ??= new Map()).set(other, now);
    }
    if (found.leader === path) return false;
    (found.others ??= new Map()).set(path, entry);
    return true;
  }

  /**
   * Whether the replica file `replica` at `path`, that the source's file
   * `source` is to be compared with, must be written anew on its own: the
   * source's name left the group the replica's file still belongs to.
   *
   * @param path its path relative to the roots.
   * @param source the source file as listed.
   * @param replica the replica file as listed.
   * @returns true to write it anew.
   */
  leftGroup(path: string, source: Entry, replica: Entry): boolean {
    if ((replica.nlink ?? 1) <= 1) return false;
    const was = this.#options.index.inodeOf(path);
    // Not known (its pair was not recorded): the replica's file has more names than the source's.
    return was === undefined ? (replica.nlink ?? 1) > (source.nlink ?? 1) : was !== source.ino;
  }

  /**
   * The MD5 the state knows of a group's content, for the names linked.
   *
   * @param ino the source inode.
   * @returns the leader's MD5, or undefined.
   */
  md5(ino: number): string | undefined {
    const leader = this.#groups.get(ino)?.leader;
    return leader === undefined ? undefined : this.#options.index.md5(leader);
  }

  /**
   * A dry run planned to write `path`: if it leads a group, its names would be linked.
   *
   * @param path its path relative to the roots.
   * @param entry the source file.
   */
  planned(path: string, entry: Entry): void {
    const group = this.#groups.get(entry.ino);
    if (group?.leader === path) group.planned = true;
  }

  /**
   * After every other write: the names to link, each to its leader (a
   * name whose leader's replica file could not be made is copied instead).
   *
   * @returns the actions, to apply in order, the attributes to set again
   *   after them (of the folders they write in), and whether a full cycle
   *   is wanted (see {@link HardLinkOptions.changedSince}); then call
   *   {@link linked}.
   */
  async actions(): Promise<{ writes: Action[]; folders: Action[]; incomplete: boolean }> {
    const copies: Action[] = [], links: Action[] = [];
    const since = this.#options.changedSince;
    let incomplete = false;
    const ids = await this.#fileIds(this.#names());
    for (const group of this.#groups.values()) {
      // Names not found, of a file changed since the last full cycle (ctime: whole seconds).
      if (
        since !== undefined && 1 + (group.others?.size ?? 0) < group.nlink &&
        group.ctimeMs >= since - 1000
      ) incomplete = true;
      if (group.others === undefined) continue;
      const made = ids.get(group.leader);
      for (const [path, source] of group.others) {
        const there = ids.get(path);
        if (made?.kind === "file" && there?.kind === "file" && there.id === made.id) continue;
        const update = there !== undefined;
        group.changed = true;
        if (made?.kind === "file" || group.planned) {
          links.push({ op: "link", path, target: group.leader, source, update });
        } else copies.push({ op: "copy", path, source, update });
      }
    }
    const writes = [...copies, ...links];
    // A write in a folder moves its mtime: the source's is set again after.
    const folders: Action[] = [];
    for (const dir of new Set(writes.map((write) => parentOf(write.path)))) {
      const folder = await this.#stat("source", dir);
      if (folder?.kind !== "dir") continue;
      folders.push({
        op: "folder",
        path: dir,
        mode: folder.mode,
        mtimeMs: folder.mtimeMs,
        quiet: true,
      });
    }
    return { writes, folders, incomplete };
  }

  /**
   * The links are made: every name of a group's replica file has a new
   * ctime (its link count changed), recorded anew; the names linked are
   * recorded as pairs (with the group's source inode and MD5), and the
   * groups met kept in {@link HardLinkOptions.memory}.
   *
   * @param full the walk went everywhere (the groups it did not meet are gone).
   */
  async linked(full: boolean): Promise<void> {
    const { index, observedAt, memory } = this.#options;
    if (memory !== undefined) {
      if (full) memory.clear();
      for (const [ino, group] of this.#groups) {
        const names = [group.leader, ...group.others?.keys() ?? []];
        if (names.length > 1) memory.set(ino, names);
        else memory.delete(ino);
      }
    }
    // Nothing linked, and every name known as a name of the file: as recorded.
    const recording = [...this.#groups].filter(([ino, group]) =>
      group.others !== undefined &&
      (group.changed || [...group.others.keys()].some((path) => index.inodeOf(path) !== ino))
    );
    if (recording.length === 0) return;
    const ids = await this.#fileIds(this.#names(recording.map(([, group]) => group)));
    for (const [, group] of recording) {
      const leader = ids.get(group.leader);
      const made = leader?.kind === "file" ? await this.#stat("replica", group.leader) : undefined;
      if (made?.kind !== "file") continue;
      const key = [made.size, made.mtimeMs, made.ctimeMs, made.ino] as const;
      index.updateReplica(group.leader, key);
      const md5 = index.md5(group.leader);
      for (const [path, source] of group.others!) {
        const there = ids.get(path);
        if (there?.kind !== "file" || there.id !== leader!.id) continue;
        index.recordCopy(path, source, key, observedAt, md5);
      }
    }
  }

  /** Every name of the groups (default: those with other names). */
  #names(groups: Iterable<Group> = this.#groups.values()): string[] {
    const names: string[] = [];
    for (const group of groups) {
      if (group.others === undefined) continue;
      names.push(group.leader, ...group.others.keys());
    }
    return names;
  }

  /** The replica's entries at `paths` that exist, with the number their file's names share. */
  async #fileIds(paths: readonly string[]): Promise<Map<string, FileId>> {
    const replica = this.#options.trees.replica;
    if (paths.length === 0) return new Map();
    if (replica.fileIds) return await replica.fileIds(paths).catch(() => new Map());
    const ids = new Map<string, FileId>();
    for (const path of paths) {
      const entry = await this.#stat("replica", path);
      if (entry !== undefined) ids.set(path, { kind: entry.kind, id: entry.ino });
    }
    return ids;
  }

  /**
   * The names the state recorded for the source inode `ino`, other than
   * `path`, that the source still has as that file (not excluded).
   */
  async #known(ino: number, path: string): Promise<Map<string, Entry>> {
    const { index, exclude, memory } = this.#options;
    const found = new Map<string, Entry>();
    for (const other of new Set([...index.pathsOfInode(ino), ...memory?.get(ino) ?? []])) {
      if (other === path) continue;
      if (exclude?.(other, false) || isExcludedFolder(exclude, parentOf(other))) continue;
      const now = await this.#stat("source", other);
      if (now?.kind === "file" && now.ino === ino) found.set(other, now);
    }
    return found;
  }

  /** Whether the replica holds the source's file `source` at `path`: known, or proved by MD5. */
  async #holds(path: string, source: Entry): Promise<boolean> {
    const { trees, index, observedAt, signal } = this.#options;
    const there = await this.#stat("replica", path);
    if (there?.kind !== "file") return false;
    const verdict = await comparePair(trees, path, source, there, index, observedAt, signal);
    return !verdict.differs && verdict.problem === undefined;
  }

  /** An entry of one tree now, or undefined (gone, or it cannot be examined). */
  async #stat(side: "source" | "replica", path: string): Promise<Entry | undefined> {
    try {
      return await this.#options.trees[side].stat(path);
    } catch {
      return undefined;
    }
  }
}

/**
 * A full cycle, folder by folder, as rclone's `march` and rsync's incremental
 * recursion do: list one source folder and its replica twin, compare their
 * files, plan the folder ({@link planFolder}) and carry out its writes, then
 * go down into its subfolders, in walk order (`comparePaths`). No whole tree
 * is ever held: memory is one folder per level, the index and what waits for
 * the end of the walk.
 *
 * What waits is what the deletion guards must see first: removals (with the
 * number of entries they take), the folders kept because they hold excluded
 * entries, and the names whose type changes (made after the removal of what
 * is there). Folder attributes wait too, as in a whole-tree plan: they are
 * set deepest first, after every write.
 *
 * @module
 */
import type { Entry, Kind } from "../core/entry.ts";
import { asError } from "../core/error.ts";
import type { ExcludeMatcher } from "../core/exclude.ts";
import { comparePair } from "./compare.ts";
import type { DigestChild, DigestNode, FolderDigests } from "./digest.ts";
import { pacer } from "../core/pace.ts";
import { compareNames } from "../core/paths.ts";
import type { PairIndex } from "../state/pair_index.ts";
import {
  type Action,
  type Child,
  type FolderInput,
  type FolderItem,
  type Owners,
  planFolder,
} from "./plan.ts";
import type { HardLinks } from "./links.ts";
import type { MoveFinder } from "./moves.ts";
import type { Listing, TreeReader } from "../core/replica.ts";
import type { Problem } from "./scan.ts";

/** Folders from which a tree is read ahead on a second thread (see {@link March.run}). */
const READ_AHEAD_FOLDERS = 32;

/** What a march reads, writes and reports through. */
export interface MarchOptions {
  /** The two trees. */
  readonly trees: { readonly source: TreeReader; readonly replica: TreeReader };
  /** The roots as opened (`replica` undefined: there is no replica folder yet). */
  readonly roots: { readonly source: Entry; readonly replica?: Entry };
  /** Paths left out of both trees. */
  readonly exclude: ExcludeMatcher | undefined;
  /** Which replica names are the program's own temp files (removed at once). */
  readonly isTemp: (name: string) => boolean;
  /** What is known of file pairs; updated as files are compared. */
  readonly index: PairIndex;
  /** Owners to keep (undefined: left alone). */
  readonly owners: Owners | undefined;
  /** When the walk started (epoch ms), for `isSettled`. */
  readonly observedAt: number;
  /**
   * Replica files whose ctime is this or later (epoch ms) are compared by
   * content though the index vouches for them: the run that wrote them did
   * not end cleanly, and they may not have reached the disk (a power cut).
   *
   * @default none
   */
  readonly recheckSince?: number;
  /** Count the entries below a folder to be removed (for `--max-delete`);
   * also done whenever excludes are given (a folder holding excluded entries is kept). */
  readonly countDeletes: boolean;
  /** The source's tree digest, computed as the walk goes (undefined: not wanted). */
  readonly digests?: FolderDigests;
  /** Stops the walk (it then throws the signal's reason). */
  readonly signal?: AbortSignal;
  /** Carry out an action now (a write in walk order, a stale temp file's removal); how
   * it ended, where that is known at once (not for a copy). */
  readonly apply: (action: Action) => Promise<unknown>;
  /**
   * Keeps hard links (see `links.ts`): a file's other names are linked to
   * its first one after the walk ({@link March.links}); none: each name is a
   * file of its own.
   */
  readonly links?: HardLinks;
  /**
   * Finds whether an entry only the source holds was moved from an entry of
   * the replica (see `moves.ts`): then it is moved, not copied.
   *
   * @default no moves
   */
  readonly moves?: MoveFinder;
  /** A folder's writes are about to be carried out (its copies can be counted in advance). */
  readonly onPlanned?: (writes: readonly Action[]) => void;
  /** A path of either tree could not be read. */
  readonly onProblem: (side: "source" | "replica", problem: Problem) => void;
  /**
   * A source folder (not the root) may not be read (permission denied): it
   * is left out, its replica twin neither listed nor changed. Reported here
   * instead of {@link onProblem}.
   *
   * @default reported to {@link onProblem}
   */
  readonly onUnreadable?: (path: string, error: Error) => void;
  /**
   * A folder of either tree was listed (`entry`: the folder itself).
   *
   * @default nothing
   */
  readonly onFolder?: (side: "source" | "replica", dir: string, entry: Entry) => void;
  /** A FIFO, socket or device in the source (never mirrored). */
  readonly onSpecial: (path: string) => void;
  /** A source entry the cycle leaves alone (for `--verbose`). */
  readonly onUnchanged?: (path: string, entry: Entry) => void;
}

/**
 * A folder a partial walk lists (a `--watch` cycle: the folders its events
 * named): a folder both trees hold. `deep`: its subfolders too, else only its
 * entries (a subfolder only the source holds is still made and filled whole,
 * one only the replica holds removed whole).
 */
export interface ScopeFolder {
  /** The folder's path (`""`: the roots). */
  readonly path: string;
  /** The folder in the source. */
  readonly source: Entry;
  /** The folder in the replica. */
  readonly replica: Entry;
  /** Walk the whole subtree. */
  readonly deep: boolean;
}

/** A name whose type changes: its source entry is made after the removal. */
export interface Blocked {
  /** The path. */
  readonly path: string;
  /** The write that makes it (`mkdir`, `copy` or `symlink`). */
  readonly write: Action;
  /** For a folder: its source entry (walked after the write). */
  readonly folder?: Entry;
  /** For a folder: where its digest goes. */
  readonly hole?: DigestNode;
}

/** What a march leaves for the end of the cycle. */
export interface MarchResult {
  /** Source entries met (excluded ones left out). */
  readonly sourceEntries: number;
  /** Entries directly in the replica root. */
  readonly replicaEntries: number;
  /** Replica entries the removals take (with everything below a removed
   * folder where it was counted; see {@link MarchOptions.countDeletes}). */
  readonly deletes: number;
  /** Removals, in walk order. */
  readonly removals: readonly Action[];
  /** Folders kept because they hold excluded entries (`keep` actions). */
  readonly keeps: readonly Action[];
  /** Names whose type changes, in walk order. */
  readonly blocked: readonly Blocked[];
  /** Folder attributes, in walk order (set them deepest first). */
  readonly attributes: readonly Action[];
  /** The root's digest node (see `digest.ts`). */
  readonly digest?: DigestNode;
  /** Whether every source folder was read completely. */
  readonly complete: boolean;
  /** The program's temp files found (their removal was asked for). */
  readonly temps: number;
}

interface Side {
  readonly children: Child[];
  /** Names of the program's own temp entries (replica side). */
  readonly temps: { readonly name: string; readonly kind: Kind }[];
  /** Whether something in the folder was excluded. */
  readonly excluded: boolean;
  /** The names of all its subfolders, excluded and own ones included. */
  readonly folders: readonly string[];
  /** Whether the listing is incomplete. */
  readonly incomplete: boolean;
  /** A source folder that may not be read (permission denied). */
  readonly denied?: boolean;
}

const NOTHING: Side = {
  children: [],
  temps: [],
  excluded: false,
  folders: [],
  incomplete: false,
};

/** What a survey of a replica-only folder found. */
interface Survey {
  /** Entries below it. */
  readonly entries: number;
  /** Whether it holds an excluded entry, at any depth. */
  readonly holdsExcluded: boolean;
}

/**
 * Walk both trees folder by folder, applying each folder's writes as it
 * goes; see the module documentation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalTree } from "../backends/local/local.ts";
 * import { March } from "./march.ts";
 * import { PairIndex } from "../state/pair_index.ts";
 * import type { Action } from "./plan.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.mkdirSync(`${dir}/src`);
 * Deno.mkdirSync(`${dir}/rep`);
 * Deno.writeTextFileSync(`${dir}/src/a`, "a");
 * Deno.writeTextFileSync(`${dir}/rep/b`, "b");
 * const trees = { source: new LocalTree(`${dir}/src`), replica: new LocalTree(`${dir}/rep`) };
 * const applied: Action[] = [];
 * const march = new March({
 *   trees, roots: { source: (await trees.source.open())!.entry }, exclude: undefined,
 *   isTemp: () => false, index: new PairIndex(), owners: undefined, observedAt: Date.now(),
 *   countDeletes: true, apply: (action) => (applied.push(action), Promise.resolve()),
 *   onProblem: () => {}, onSpecial: () => {},
 * });
 * const result = await march.run(true);
 * assert.deepEqual(applied.map((a) => [a.op, a.path]), [["copy", "a"]]);
 * assert.deepEqual(result.removals.map((a) => [a.op, a.path]), [["remove", "b"]]);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class March {
  readonly #options: MarchOptions;
  readonly #survey: boolean;
  readonly #pace = pacer();
  #sourceEntries = 0;
  #replicaEntries = 0;
  /** Replica entries each removal takes (a removed folder with all below it, where counted). */
  readonly #deletes = new Map<string, number>();
  #temps = 0;
  #complete = true;
  readonly #removals: Action[] = [];
  readonly #keeps: Action[] = [];
  readonly #blocked: Blocked[] = [];
  readonly #attributes: Action[] = [];
  /** Replica folders found to hold excluded entries (by surveys). */
  readonly #holding = new Set<string>();
  /** Entries below replica folders surveyed. */
  readonly #counts = new Map<string, number>();

  /** @param options see {@link MarchOptions}. */
  constructor(options: MarchOptions) {
    this.#options = options;
    this.#survey = options.countDeletes || options.exclude !== undefined;
  }

  /**
   * Walk from the roots, or (`scope`) only the folders given, as one walk:
   * what waits for the end is gathered over all of them.
   *
   * @param replicaExists whether the replica root exists.
   * @param scope the folders to walk (a partial walk; in walk order, none
   *   below another that is walked deep). Default: the whole trees.
   * @returns what waits for the end of the cycle.
   */
  async run(replicaExists: boolean, scope?: readonly ScopeFolder[]): Promise<MarchResult> {
    let digest: DigestNode | undefined;
    if (scope === undefined) {
      const roots = this.#options.roots;
      const self = replicaExists ? { source: roots.source, replica: roots.replica } : {
        source: roots.source,
      };
      // Reading ahead on a second thread costs its start (~20 ms): worth it
      // unless the state knows the tree to be small.
      const index = this.#options.index;
      if (replicaExists && (index.folders === 0 || index.folders >= READ_AHEAD_FOLDERS)) {
        this.#options.trees.replica.readAhead?.();
      }
      digest = await this.#folder("", self, replicaExists, false, true, true);
    } else {
      for (const folder of scope) {
        await this.#folder(
          folder.path,
          { source: folder.source, replica: folder.replica },
          true,
          false,
          folder.path === "",
          folder.deep,
        );
      }
    }
    return {
      sourceEntries: this.#sourceEntries,
      replicaEntries: this.#replicaEntries,
      // What was moved away meanwhile is not removed, nor counted.
      ...this.#removalsLeft(),
      keeps: this.#keeps,
      blocked: this.#blocked,
      attributes: this.#attributes,
      complete: this.#complete,
      temps: this.#temps,
      ...(digest ? { digest } : {}),
    };
  }

  /**
   * After the removals: make the names whose type changed, walking a folder's
   * whole source subtree (its replica side is gone).
   *
   * @param blocked the names, from {@link run}'s result.
   * @returns the folder attributes of what was made (set them with the others).
   */
  async afterRemovals(blocked: readonly Blocked[]): Promise<readonly Action[]> {
    const before = this.#attributes.length;
    for (const { write, folder, hole, path } of blocked) {
      await this.#options.apply(write);
      if (folder === undefined) continue;
      const node = await this.#folder(path, { source: folder }, false, false, false, true);
      if (hole !== undefined) this.#options.digests?.fill(hole, node);
    }
    return this.#attributes.slice(before);
  }

  /**
   * One folder: list, compare, plan, apply its writes, go down (`deep`: into
   * every subfolder; else only into those the replica lacks); its digest
   * node (undefined when not computed).
   */
  async #folder(
    dir: string,
    self: FolderInput["self"],
    replicaExists: boolean,
    unread: boolean,
    isRoot: boolean,
    deep: boolean,
  ): Promise<DigestNode | undefined> {
    const options = this.#options;
    options.signal?.throwIfAborted();
    await this.#pace();
    const prefix = dir === "" ? "" : `${dir}/`;
    const source = self.source !== undefined && !self.kept
      ? await this.#list("source", dir)
      : NOTHING;
    // A source folder that may not be read leaves its replica twin alone:
    // there is nothing to compare it with.
    if (source.denied && replicaExists) options.trees.replica.skip?.([dir]);
    const replica = replicaExists && !source.denied ? await this.#list("replica", dir) : NOTHING;
    if (options.onFolder) {
      if (self.source && !self.kept && !source.incomplete) {
        options.onFolder("source", dir, self.source);
      }
      if (self.replica && replica !== NOTHING && !replica.incomplete) {
        options.onFolder("replica", dir, self.replica);
      }
    }
    if (source.incomplete) this.#complete = false;
    unread ||= source.incomplete;
    if (isRoot) this.#replicaEntries = replica.children.length;
    this.#sourceEntries += source.children.length;

    for (const { name, entry } of source.children) {
      if (entry.kind === "other") options.onSpecial(prefix + name);
    }

    // Replica folders the source lacks (or has as something else): what
    // they hold, before deciding to remove them.
    if (this.#survey) {
      const surveyed: string[] = [];
      let s = 0;
      for (const { name, entry } of replica.children) {
        if (entry.kind !== "dir") continue;
        while (
          s < source.children.length && compareNames(source.children[s]!.name, name) < 0
        ) s++;
        const twin = source.children[s]?.name === name ? source.children[s]!.entry : undefined;
        if (twin?.kind !== "dir") surveyed.push(prefix + name);
      }
      // Read out of the walk's order, and never walked: not from the read-ahead.
      if (surveyed.length > 0) options.trees.replica.skip?.(surveyed);
      for (const dir of surveyed) {
        const found = await this.#surveyReplica(dir);
        this.#counts.set(dir, found.entries);
        if (found.holdsExcluded) this.#holding.add(dir);
      }
    }

    // Compare the files both sides have, at the same size.
    const changed = new Set<string>();
    /** Names that are second names of a file (hard links): made at the end. */
    const linked = new Set<string>();
    const md5s = new Map<string, string>();
    /** Files whose MD5 the index knows (looked up when the folder's digest needs it), by
     * their place in the source's listing. */
    const vouched = new Uint8Array(source.children.length);
    const index = options.index;
    const files: string[] = [];
    const links = options.links;
    const prefetch = options.trees.replica.prefetchMd5;
    if (prefetch !== undefined) {
      // The replica files the index cannot vouch for, asked for at once (a remote batch).
      const replicaFiles = new Map(replica.children.map((child) => [child.name, child.entry]));
      const wanted: { path: string; size: number }[] = [];
      for (const { name, entry: src } of source.children) {
        const dst = replicaFiles.get(name);
        if (
          src.kind === "file" && dst?.kind === "file" && dst.size === src.size &&
          !index.knowsIn(dir, name, "replica", dst)
        ) wanted.push({ path: prefix + name, size: dst.size });
      }
      if (wanted.length > 0) prefetch.call(options.trees.replica, wanted);
    }
    {
      let r = 0;
      for (let s = 0; s < source.children.length; s++) {
        const { name, entry: src } = source.children[s]!;
        if (src.kind !== "file") continue;
        files.push(name);
        while (
          r < replica.children.length && compareNames(replica.children[r]!.name, name) < 0
        ) r++;
        const twin = replica.children[r];
        const dst = twin?.name === name ? twin.entry : undefined;
        if (links !== undefined) {
          const path = prefix + name;
          // Another name of a file met or known before: linked after the walk.
          if ((src.nlink ?? 1) > 1 && await links.joins(path, src)) {
            linked.add(name);
            const md5 = options.digests ? links.md5(src.ino) : undefined;
            if (md5 !== undefined) md5s.set(name, md5);
            continue;
          }
          // The source's name left a group the replica's file is still in: a file of its own.
          if (dst?.kind === "file" && links.leftGroup(path, src, dst)) {
            if (dst.size === src.size) changed.add(name);
            continue;
          }
        }
        // Written just before an unclean stop: maybe lost on the way to the disk.
        if (dst?.kind === "file" && dst.ctimeMs >= (options.recheckSince ?? Infinity)) {
          index.distrustReplica(prefix + name);
        }
        const sourceKnown = index.knowsIn(dir, name, "source", src);
        if (
          dst?.kind !== "file" || (sourceKnown && dst.size === src.size &&
            index.knowsIn(dir, name, "replica", dst))
        ) {
          // Nothing to read: not a pair, or a pair the index vouches for.
          // Its MD5 is looked up only if the folder's digest is not known (see `digest.ts`).
          if (options.digests && sourceKnown) vouched[s] = 1;
          continue;
        }
        const verdict = await comparePair(
          options.trees,
          prefix + name,
          src,
          dst,
          index,
          options.observedAt,
          options.signal,
        );
        if (verdict.sourceMd5 !== undefined) md5s.set(name, verdict.sourceMd5);
        if (verdict.problem) options.onProblem("source", verdict.problem);
        else if (verdict.differs && src.size === dst.size) changed.add(name);
        if (verdict.read) await this.#pace();
      }
    }
    index.visit(dir, files, self.source?.ino);

    const planned = planFolder({
      path: dir,
      self,
      source: source.children,
      replica: replica.children,
      changed,
      incomplete: unread,
      holdsExcluded: (name) => this.#holding.has(prefix + name),
      hasTemps: replica.temps.length > 0,
      deletions: true,
      owners: options.owners,
      ...(options.trees.replica.mtimePrecision
        ? { precision: options.trees.replica.mtimePrecision }
        : {}),
    });
    // A second name of a file is linked at the end, not written now.
    const plan = linked.size === 0 ? planned : {
      ...planned,
      items: planned.items.map((item) =>
        linked.has(item.name) && !item.removal && item.write ? { ...item, write: undefined } : item
      ),
    };
    options.onPlanned?.(
      plan.items.flatMap((item) => item.write && !item.removal ? [item.write] : []),
    );
    // Replica folders this walk will not list: not worth reading ahead.
    if (replica.folders.length > 0 && options.trees.replica.skip) {
      const walked = new Set<string>();
      for (const item of plan.items) {
        if ((item.descend?.replica !== undefined && !item.removal) || item.kept) {
          walked.add(item.name);
        }
      }
      const skipped = replica.folders.filter((name) => !walked.has(name));
      if (skipped.length > 0) options.trees.replica.skip(skipped.map((name) => prefix + name));
    }
    if (plan.opening) await options.apply(plan.opening);
    // The program's own stale temp files go first, whatever the guards say.
    for (const { name, kind } of replica.temps) {
      this.#temps++;
      await options.apply({ op: "remove", path: prefix + name, kind });
    }
    if (plan.attributes && !source.denied) this.#attributes.push(plan.attributes);
    if (!isRoot && self.source !== undefined && !plan.attributes && !self.kept) {
      options.onUnchanged?.(dir, self.source);
    }

    // Name by name: the source's entries (for the digest) beside the plan's items.
    const digest: DigestChild[] = [];
    let item = 0;
    const items = plan.items;
    for (let s = 0; s < source.children.length; s++) {
      const { name, entry } = source.children[s]!;
      while (item < items.length && compareNames(items[item]!.name, name) < 0) {
        await this.#item(prefix, items[item++]!, unread, deep);
      }
      const mine = items[item]?.name === name ? items[item++] : undefined;
      const node = mine === undefined ? undefined : await this.#item(prefix, mine, unread, deep);
      if (mine === undefined && entry.kind !== "dir" && entry.kind !== "other") {
        options.onUnchanged?.(prefix + name, entry);
      }
      if (entry.kind === "other") continue;
      // One shape for every child (no spread objects): a walk makes one per entry.
      const md5 = md5s.size === 0 ? undefined : md5s.get(name);
      digest.push({ name, entry, md5, vouched: md5 === undefined && vouched[s] === 1, node });
    }
    while (item < items.length) await this.#item(prefix, items[item++]!, unread, deep);
    if (self.source === undefined || self.kept || options.digests === undefined) return undefined;
    return await options.digests.folder(dir, digest, !source.incomplete);
  }

  /**
   * One item of a folder's plan: its removal and keep wait, its write is
   * carried out (or waits for the removal), a folder is walked. Returns the
   * digest node of a source folder (walked, or a hole for one walked later).
   */
  async #item(
    prefix: string,
    item: FolderItem,
    unread: boolean,
    deep: boolean,
  ): Promise<DigestNode | undefined> {
    const options = this.#options;
    const path = prefix + item.name;
    if (item.removal) {
      this.#removals.push(item.removal);
      this.#deletes.set(
        path,
        1 + (item.removal.kind === "dir" ? this.#counts.get(path) ?? 0 : 0),
      );
    }
    if (item.removal && item.write) {
      // A type change: made after the removal, at the end of the cycle.
      const hole = item.descend && options.digests ? options.digests.hole() : undefined;
      this.#blocked.push({
        path,
        write: item.write,
        ...(item.descend ? { folder: item.descend.source } : {}),
        ...(hole ? { hole } : {}),
      });
      return hole;
    }
    let descend = item.descend;
    const moved = item.write ? await this.#move(path, item.write, descend) : undefined;
    if (moved === "planned") return undefined; // a dry run: its content moves with it
    if (typeof moved === "object") descend = moved; // a folder moved: walked as both trees hold it
    else if (moved === undefined && item.write) {
      const write = item.write;
      // A dry run: if it leads a group of names, they would be linked to it.
      if (await options.apply(write) === "planned" && write.op === "copy") {
        options.links?.planned(path, write.source);
      }
    }
    // A partial walk goes into a folder both trees hold only when it is deep.
    if (descend && (deep || descend.replica === undefined || moved !== undefined)) {
      return await this.#folder(path, descend, descend.replica !== undefined, unread, false, true);
    }
    if (item.kept) {
      const removedBefore = this.#removals.length;
      const replica = await options.trees.replica.stat(path);
      if (replica?.kind === "dir") {
        await this.#folder(path, { replica, kept: true }, true, unread, false, true);
      }
      if (item.kept.blocks !== undefined || this.#removals.length > removedBefore) {
        this.#keeps.push(
          item.kept.blocks === undefined
            ? { op: "keep", path }
            : { op: "keep", path, blocks: item.kept.blocks },
        );
      }
    }
    return undefined;
  }

  /**
   * After every other write (the removals, the names whose type changed):
   * the names of files with several names to link (see `links.ts`).
   *
   * @returns the writes, to apply in order, and the folders whose attributes
   *   to set after them (with the others); then call {@link linked}.
   */
  async links(): Promise<{ writes: Action[]; folders: Action[]; incomplete: boolean }> {
    return await this.#options.links?.actions() ?? { writes: [], folders: [], incomplete: false };
  }

  /**
   * The links are made: what the state knows of them is brought up to date.
   *
   * @param full the walk went everywhere.
   */
  async linked(full: boolean): Promise<void> {
    await this.#options.links?.linked(full);
  }

  /** The removals still due (not moved away by a later move), and the entries they take. */
  #removalsLeft(): { removals: Action[]; deletes: number } {
    const moves = this.#options.moves;
    const removals = moves === undefined
      ? this.#removals
      : this.#removals.filter((removal) => !moves.movedAway(removal.path));
    let deletes = 0;
    for (const { path } of removals) {
      deletes += (this.#deletes.get(path) ?? 1) - (moves?.movedBelow(path) ?? 0);
    }
    return { removals, deletes };
  }

  /**
   * Move the replica's entry that the source's new entry at `path` was moved
   * from, where one is found (see `moves.ts`), instead of the `write` that
   * makes it. Returns undefined when no move was made (make it), "done" for a
   * file moved, what to walk for a folder moved, "planned" in a dry run.
   */
  async #move(
    path: string,
    write: Action,
    descend: FolderItem["descend"],
  ): Promise<FolderItem["descend"] | "done" | "planned" | undefined> {
    const moves = this.#options.moves;
    if (moves === undefined) return undefined;
    const entry = write.op === "copy" && !write.update
      ? write.source
      : write.op === "mkdir"
      ? descend?.source
      : undefined;
    if (entry === undefined) return undefined;
    const move = await moves.find(path, entry);
    if (move?.op !== "move") return undefined;
    const status = await this.#options.apply(move);
    if (status === "planned") return "planned";
    if (status !== "done") return undefined; // it failed: made as if new
    if (move.kind === "file") return "done";
    return { source: entry, replica: move.replica };
  }

  /** One folder of one tree, its names sorted, excluded and own entries set apart. */
  async #list(side: "source" | "replica", dir: string): Promise<Side> {
    const options = this.#options;
    let listing: Listing;
    try {
      listing = await options.trees[side].list(dir);
    } catch (error) {
      if (options.signal?.aborted) throw error;
      if (
        side === "source" && dir !== "" && options.onUnreadable &&
        error instanceof Deno.errors.PermissionDenied
      ) {
        options.onUnreadable(dir, error);
        return { ...NOTHING, incomplete: true, denied: true };
      }
      options.onProblem(side, { path: dir, error: asError(error) });
      return { ...NOTHING, incomplete: true };
    }
    const prefix = dir === "" ? "" : `${dir}/`;
    for (const { name, error } of listing.problems) {
      options.onProblem(side, { path: prefix + name, error });
    }
    const children: Child[] = [];
    const temps: { name: string; kind: Kind }[] = [];
    let excluded = false;
    const folders: string[] = [];
    for (const child of listing.entries) {
      if (child.entry.kind === "dir") folders.push(child.name);
      if (side === "replica" && options.isTemp(child.name)) {
        temps.push({ name: child.name, kind: child.entry.kind });
      } else if (options.exclude?.(prefix + child.name, child.entry.kind === "dir")) {
        excluded = true;
      } else children.push(child);
    }
    return { children, temps, excluded, folders, incomplete: listing.problems.length > 0 };
  }

  /**
   * What a replica folder the source lacks holds: entries, and whether any is
   * excluded. A folder that could not be listed (in full) is taken as holding
   * excluded entries: it is kept, and so is every folder above it; only what
   * is known to be extra is removed.
   */
  async #surveyReplica(dir: string): Promise<Survey> {
    const side = await this.#list("replica", dir);
    let entries = side.children.length, holdsExcluded = side.excluded || side.incomplete;
    for (const { name, entry } of side.children) {
      if (entry.kind !== "dir") continue;
      const below = await this.#surveyReplica(`${dir}/${name}`);
      entries += below.entries;
      if (below.holdsExcluded) {
        holdsExcluded = true;
        this.#holding.add(`${dir}/${name}`);
      }
    }
    return { entries, holdsExcluded };
  }
}

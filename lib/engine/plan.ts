/**
 * The planner: a pure function from two trees to the ordered list of actions
 * that makes the replica equal to the source. It reads no disk; which
 * same-size files differ in content is an input.
 *
 * Order: the program's own stale temp files first, then removals (a removed
 * folder takes its contents with it, and a path whose type changes is removed
 * before it is recreated); then creations and updates in path order, each
 * folder followed by its whole subtree (so parents come before children, and
 * a new folder can be filled at once); last, folder attributes (permission
 * bits, mtime, owner), deepest first: a read-only folder is made read-only,
 * and a folder's mtime set, only after everything has been written into it,
 * as `rsync -a` does.
 *
 * @module
 */
import { type Entry, type Kind, type Owner, sameMtime, type Tree } from "../core/entry.ts";
import { compareNames, comparePaths, hasAncestorIn, parentOf } from "../core/paths.ts";

/** One step of a plan. Paths are relative to the roots. */
export type Action =
  /** Make the replica's root folder (it is missing). */
  | { readonly op: "root"; readonly path: "" }
  /** Remove the replica entry (recursively for a folder). */
  | { readonly op: "remove"; readonly path: string; readonly kind: Kind }
  /** Create a folder with `mode` (the source's bits plus owner rwx, so it can be filled). */
  | { readonly op: "mkdir"; readonly path: string; readonly mode: number }
  /** Copy the source file over (`update`: a replica file of different content exists). */
  | { readonly op: "copy"; readonly path: string; readonly source: Entry; readonly update: boolean }
  /** Create the symlink (`update`: replace one with another target) with the
   * source's mtime, owned like the source's (`uid`, `gid`) where the apply
   * stage may. */
  | {
    readonly op: "symlink";
    readonly path: string;
    readonly target: string;
    readonly update: boolean;
    readonly mtimeMs: number;
    readonly uid?: number;
    readonly gid?: number;
  }
  /** Same content; set the file's permission bits and mtime to the source's,
   * and the owner where `owner` says (`replica`: the replica file as scanned). */
  | {
    readonly op: "touch";
    readonly path: string;
    readonly source: Entry;
    readonly replica: Entry;
    readonly owner?: Owner;
  }
  /** Set a folder's permission bits, mtime and (`owner`) owner, after all
   * writes into it (`""` is the replica root). `quiet`: it was created this
   * cycle, or only this cycle's own writes in it changed its mtime: nothing
   * worth a log line. */
  | {
    readonly op: "folder";
    readonly path: string;
    readonly mode: number;
    readonly mtimeMs: number;
    readonly owner?: Owner;
    readonly quiet: boolean;
    /** Only the owner differed (a refused change then changes nothing). */
    readonly ownerOnly?: boolean;
    /** Before the writes: the folder is only made writable (owner rwx) for
     * them; its own attributes come at the end. */
    readonly opening?: boolean;
  }
  /** Same target: set a symlink's own mtime and (`owner`) owner (symlinks
   * have no permission bits of their own). */
  | {
    readonly op: "lattr";
    readonly path: string;
    readonly mtimeMs?: number;
    readonly owner?: Owner;
  }
  /**
   * Move the replica's file or folder `from` to `path` (one rename): the
   * source's entry moved there (see `moves.ts`); `source` is it at `path`,
   * `replica` what is at `from`, `md5` a file's MD5 (read to prove the move).
   */
  | {
    readonly op: "move";
    readonly path: string;
    readonly from: string;
    readonly kind: "file" | "dir";
    readonly source: Entry;
    readonly replica: Entry;
    readonly md5?: string;
  }
  /**
   * Make the replica's file `path` another name of its file `target` (a hard
   * link; `update`: it replaces what is at `path`): the source's file `source`
   * at `path` is a second name of the one at `target`.
   */
  | {
    readonly op: "link";
    readonly path: string;
    readonly target: string;
    readonly source: Entry;
    readonly update: boolean;
  }
  /** Not an action on the disk: the replica folder is kept, though the source
   * lacks it (or has another kind of entry there, `blocks`), because it holds
   * excluded entries; its other contents are removed. */
  | { readonly op: "keep"; readonly path: string; readonly blocks?: Kind };

/** Which owners the mirror keeps (as `rsync -a`: users only when run as root). */
export interface Owners {
  /** The user and group new entries get when the mirror makes them. */
  readonly self: { readonly uid: number; readonly gid: number };
  /** Owner users are kept too (the mirror runs as root); else only groups. */
  readonly users: boolean;
  /** Groups this process may not give (found out when refused): left alone. */
  readonly deniedGroups: ReadonlySet<number>;
}

/**
 * The owner change that makes an entry owned like `source`.
 *
 * @param source the source entry, whose owner is to be copied.
 * @param current the replica entry as it is owned now (undefined: one the
 * mirror is about to make, which it owns).
 * @param owners which owners the mirror keeps (undefined: none).
 * @returns the user and/or group to give, or undefined when no change is
 * needed or allowed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ownerChange } from "./plan.ts";
 * import type { Entry } from "../core/entry.ts";
 * const source: Entry = { kind: "file", size: 1, mtimeMs: 0, ctimeMs: 0, ino: 1, mode: 0o644 };
 * const owners = { self: { uid: 1000, gid: 1000 }, users: false, deniedGroups: new Set<number>() };
 * const change = ownerChange({ ...source, uid: 0, gid: 50 }, undefined, owners);
 * assert.deepEqual(change, { gid: 50 }); // not root: the group only
 * ```
 */
export function ownerChange(
  source: Entry,
  current: Entry | undefined,
  owners: Owners | undefined,
): Owner | undefined {
  if (owners === undefined || source.uid === undefined || source.gid === undefined) return;
  // Not root: only an entry of one's own can be given another group.
  if (!owners.users && current !== undefined && current.uid !== owners.self.uid) return;
  const uidNow = current === undefined ? owners.self.uid : current.uid;
  const gidNow = current === undefined ? owners.self.gid : current.gid;
  const uid = owners.users && source.uid !== uidNow ? source.uid : undefined;
  const gid = source.gid !== gidNow && !owners.deniedGroups.has(source.gid)
    ? source.gid
    : undefined;
  if (uid === undefined && gid === undefined) return undefined;
  return { ...(uid === undefined ? {} : { uid }), ...(gid === undefined ? {} : { gid }) };
}

/** Inputs beyond the two trees. */
export interface PlanOptions {
  /** Same-size file pairs whose content differs. */
  readonly changed: ReadonlySet<string>;
  /**
   * Source folders whose listing is incomplete (`""` is the root): nothing under
   * them is removed from the replica.
   *
   * @default none
   */
  readonly incomplete?: ReadonlySet<string>;
  /**
   * When false, nothing in the replica is removed: replica-only entries stay,
   * and a path whose type differs is left alone (with everything below it).
   *
   * @default {true}
   */
  readonly deletions?: boolean;
  /**
   * Replica folders that hold excluded entries, at any depth (they are in
   * neither tree): such a folder is never removed; its other contents are.
   *
   * @default none
   */
  readonly holdsExcluded?: ReadonlySet<string>;
  /**
   * Owners to keep.
   *
   * @default ownership is left alone
   */
  readonly owners?: Owners;
  /**
   * The two root folders themselves: the replica root gets the source root's
   * attributes too (as `rsync -a src/ dst/`).
   *
   * @default the roots are left alone
   */
  readonly roots?: { readonly source: Entry; readonly replica: Entry };
  /**
   * The program's own stale temp files and folders in the replica: removed
   * first, whatever the other inputs say.
   *
   * @default none
   */
  readonly temps?: readonly { readonly path: string; readonly kind: Kind }[];
}

/** One entry of a folder listing, as the planner sees it. */
export interface Child {
  /** The entry's name in its folder. */
  readonly name: string;
  /** What it is. */
  readonly entry: Entry;
}

/** What {@link planFolder} decides from: one folder of each tree. */
export interface FolderInput {
  /** The folder's path (`""`: the roots). */
  readonly path: string;
  /**
   * The folder itself in the source, and in the replica as it is (undefined:
   * the mirror makes it this cycle, or it is not in the source). Its
   * attributes are planned when the source has it; for the roots, only when
   * both are given (see {@link PlanOptions.roots}).
   */
  readonly self: {
    readonly source?: Entry;
    readonly replica?: Entry;
    /** A replica folder kept (it holds excluded entries) that the source lacks. */
    readonly kept?: boolean;
  };
  /** The source folder's entries, sorted by name (`compareNames`); empty when it has none. */
  readonly source: readonly Child[];
  /** The replica folder's entries, sorted by name; empty when it has none. */
  readonly replica: readonly Child[];
  /** Names of same-size file pairs whose content differs. */
  readonly changed: ReadonlySet<string>;
  /** The source listing of this folder or of a folder above it is incomplete:
   * nothing the source lacks is removed here. */
  readonly incomplete: boolean;
  /** Replica folders (by name) that hold excluded entries, at any depth. */
  readonly holdsExcluded: (name: string) => boolean;
  /** Whether this folder's replica side holds the program's stale temp files
   * (removed this cycle: a write in the folder). */
  readonly hasTemps: boolean;
  /** When false, nothing is removed: a name whose type differs is left alone. */
  readonly deletions: boolean;
  /** Owners to keep (undefined: ownership is left alone). */
  readonly owners: Owners | undefined;
  /**
   * The replica's mtime precision, in ms (see `TreeReader.mtimePrecision`).
   *
   * @default {1}
   */
  readonly precision?: number;
}

/** What happens to one name of a folder, in name order. */
export interface FolderItem {
  /** The name (in the source, the replica, or both). */
  readonly name: string;
  /** Remove the replica's entry first (it is not in the source, or of another type). */
  readonly removal?: Action & { readonly op: "remove" };
  /** The replica folder is kept, though the source lacks it or has another
   * type there (`blocks`), because it holds excluded entries. */
  readonly kept?: { readonly blocks?: Kind };
  /** The write that makes the name match the source (after {@link removal}, if any). */
  readonly write?: Action;
  /** The name is a source folder: plan inside it next (`replica`: its
   * replica twin, when it is a folder already and stays). */
  readonly descend?: { readonly source: Entry; readonly replica?: Entry };
}

/** The plan of one folder. */
export interface FolderPlan {
  /** Before any write in the folder: make it writable for them. */
  readonly opening?: Action;
  /** Name by name, in name order. */
  readonly items: readonly FolderItem[];
  /** The folder's own attributes, after every write in it and below it. */
  readonly attributes?: Action;
}

/**
 * Plan one folder: what to do with each name in it, given both listings.
 * Pure; walks nothing. A whole-tree plan ({@link plan}) and the
 * folder-by-folder walk of a cycle (`march.ts`) are both made of it.
 *
 * @param input the two listings and what else decides; see {@link FolderInput}.
 * @returns the folder's plan.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { planFolder } from "./plan.ts";
 * import type { Entry } from "../core/entry.ts";
 * const file: Entry = { kind: "file", size: 1, mtimeMs: 0, ctimeMs: 0, ino: 1, mode: 0o644 };
 * const folder = planFolder({
 *   path: "", self: {}, source: [{ name: "a", entry: file }], replica: [{ name: "b", entry: file }],
 *   changed: new Set(), incomplete: false, holdsExcluded: () => false, hasTemps: false,
 *   deletions: true, owners: undefined,
 * });
 * assert.deepEqual(folder.items.map((item) => [item.name, item.removal?.op, item.write?.op]), [
 *   ["a", undefined, "copy"],
 *   ["b", "remove", undefined],
 * ]);
 * ```
 */
export function planFolder(input: FolderInput): FolderPlan {
  const { path: dir, owners } = input;
  const prefix = dir === "" ? "" : `${dir}/`;
  const items: FolderItem[] = [];
  let wrote = input.hasTemps;
  let i = 0, j = 0;
  const sources = input.source, replicas = input.replica;
  while (i < sources.length || j < replicas.length) {
    const a = sources[i], b = replicas[j];
    const order = a === undefined ? 1 : b === undefined ? -1 : compareNames(a.name, b.name);
    const src = order <= 0 ? a!.entry : undefined;
    const dst = order >= 0 ? b!.entry : undefined;
    const name = order <= 0 ? a!.name : b!.name;
    if (order <= 0) i++;
    if (order >= 0) j++;
    let removal: (Action & { op: "remove" }) | undefined;
    let kept: { blocks?: Kind } | undefined;
    if (dst !== undefined && src?.kind !== dst.kind && input.deletions) {
      if (src === undefined && input.incomplete) {
        // Not known to be gone: its folder was not read completely.
      } else if (dst.kind === "dir" && input.holdsExcluded(name)) {
        kept = src === undefined ? {} : { blocks: src.kind };
      } else {
        removal = { op: "remove", path: prefix + name, kind: dst.kind };
        wrote = true;
      }
    }
    const blocked = src !== undefined && dst !== undefined && src.kind !== dst.kind &&
      (!input.deletions || kept !== undefined);
    let write: Action | undefined;
    let descend: FolderItem["descend"];
    if (src !== undefined && !blocked) {
      const present = dst?.kind === src.kind ? dst : undefined;
      const changed = input.changed.size > 0 && input.changed.has(name);
      write = entryWrite(prefix, name, src, present, changed, owners, input.precision);
      if (write !== undefined && write.op !== "touch" && write.op !== "lattr") wrote = true;
      if (src.kind === "dir") {
        descend = present ? { source: src, replica: present } : { source: src };
      }
    }
    if (removal || kept || write || descend) {
      items.push({
        name,
        ...(removal ? { removal } : {}),
        ...(kept ? { kept } : {}),
        ...(write ? { write } : {}),
        ...(descend ? { descend } : {}),
      });
    }
  }
  return { ...folderAttributes(dir, input.self, wrote, owners, input.precision), items };
}

/** The write that makes the replica's `present` entry (of the same kind, or
 * none) match the source's `src`, if one is needed (at `prefix` + `name`: the
 * path is made only for a write). */
function entryWrite(
  prefix: string,
  name: string,
  src: Entry,
  present: Entry | undefined,
  changed: boolean,
  owners: Owners | undefined,
  precision = 1,
): Action | undefined {
  switch (src.kind) {
    case "dir":
      return present === undefined
        ? { op: "mkdir", path: prefix + name, mode: src.mode | 0o700 }
        : undefined;
    case "file": {
      if (present === undefined || present.size !== src.size || changed) {
        return { op: "copy", path: prefix + name, source: src, update: present !== undefined };
      }
      const owner = ownerChange(src, present, owners);
      if (
        present.mode === src.mode && sameMtime(present.mtimeMs, src.mtimeMs, precision) && !owner
      ) {
        return;
      }
      const path = prefix + name;
      return { op: "touch", path, source: src, replica: present, ...(owner ? { owner } : {}) };
    }
    case "symlink": {
      if (present === undefined || present.target !== src.target) {
        return {
          op: "symlink",
          path: prefix + name,
          target: src.target ?? "",
          update: present !== undefined,
          mtimeMs: src.mtimeMs,
          ...(src.uid === undefined ? {} : { uid: src.uid }),
          ...(src.gid === undefined ? {} : { gid: src.gid }),
        };
      }
      const owner = ownerChange(src, present, owners);
      const mtime = !sameMtime(present.mtimeMs, src.mtimeMs, precision);
      if (!owner && !mtime) return undefined;
      return {
        op: "lattr",
        path: prefix + name,
        ...(mtime ? { mtimeMs: src.mtimeMs } : {}),
        ...(owner ? { owner } : {}),
      };
    }
    case "other":
      return undefined; // FIFOs, sockets and devices are not mirrored.
  }
}

/** A folder's own attributes (and the opening before writes in it), given
 * whether this cycle writes in it. */
function folderAttributes(
  path: string,
  self: FolderInput["self"],
  wrote: boolean,
  owners: Owners | undefined,
  precision = 1,
): { opening?: Action; attributes?: Action } {
  const dst = self.replica;
  const opens = wrote && dst !== undefined && (dst.mode & 0o700) !== 0o700;
  if (self.kept) {
    // A kept folder the mirror may not write in is opened for the removals in
    // it, and closed again with its own attributes.
    if (!opens) return {};
    const own = { op: "folder" as const, path, mtimeMs: dst!.mtimeMs, quiet: true };
    return {
      opening: { ...own, mode: dst!.mode | 0o700, opening: true },
      attributes: { ...own, mode: dst!.mode },
    };
  }
  const src = self.source;
  if (src === undefined || (path === "" && dst === undefined)) return {};
  const owner = ownerChange(src, dst, owners);
  const sameMode = dst !== undefined && dst.mode === src.mode;
  const sameTime = dst !== undefined && sameMtime(dst.mtimeMs, src.mtimeMs, precision);
  if (sameMode && sameTime && owner === undefined && !wrote) return {};
  // Quiet: the replica root (not an entry of the tree), a new folder, or one
  // whose mtime alone differs while this cycle writes in it (its entries
  // changed in the source, which moved the source folder's mtime).
  const quiet = path === "" || dst === undefined ||
    (sameMode && owner === undefined && (sameTime || wrote));
  const attributes: Action = {
    op: "folder",
    path,
    mode: src.mode,
    mtimeMs: src.mtimeMs,
    ...(owner ? { owner } : {}),
    quiet,
    ...(sameMode && sameTime && owner !== undefined ? { ownerOnly: true } : {}),
  };
  if (!opens) return { attributes };
  return {
    opening: {
      op: "folder",
      path,
      mode: dst!.mode | 0o700,
      mtimeMs: dst!.mtimeMs,
      quiet: true,
      opening: true,
    },
    attributes,
  };
}

/**
 * Plan the actions that turn `replica` into `source`, folder by folder
 * ({@link planFolder}) over two whole trees.
 *
 * Order: the program's own stale temp files first, then removals (a removed
 * folder takes its contents with it, and a path whose type changes is removed
 * before it is recreated); then creations and updates in path order, each
 * folder followed by its whole subtree (so parents come before children, and
 * a new folder can be filled at once); last, folder attributes (permission
 * bits, mtime, owner), deepest first: a read-only folder is made read-only,
 * and a folder's mtime set, only after everything has been written into it,
 * as `rsync -a` does.
 *
 * @param source the source tree.
 * @param replica the replica tree, as it is.
 * @param options what else the plan depends on; see {@link PlanOptions}.
 * @returns the actions, in the order they must be applied.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { plan } from "./plan.ts";
 * import type { Entry } from "../core/entry.ts";
 * const file: Entry = { kind: "file", size: 1, mtimeMs: 0, ctimeMs: 0, ino: 1, mode: 0o644 };
 * const actions = plan(new Map([["a", file]]), new Map(), { changed: new Set() });
 * assert.ok(actions[0]?.op === "copy");
 * ```
 */
export function plan(source: Tree, replica: Tree, options: PlanOptions): Action[] {
  const incomplete = options.incomplete ?? new Set<string>();
  const holdsExcluded = options.holdsExcluded ?? new Set<string>();
  const deletions = options.deletions ?? true;
  const sourceKids = childrenOf(source), replicaKids = childrenOf(replica);
  const changed = namesByFolder(options.changed);
  const temps: Action[] = (options.temps ?? []).map(({ path, kind }) => ({
    op: "remove",
    path,
    kind,
  }));
  const withTemps = new Set((options.temps ?? []).map(({ path }) => parentOf(path)));
  const removals: Action[] = [], kept: { path: string; blocks?: Kind }[] = [];
  const writes: Action[] = [], opening: Action[] = [], attributes: Action[] = [];
  const visit = (dir: string, self: FolderInput["self"], below: boolean) => {
    const unread = below || incomplete.has(dir);
    const folder = planFolder({
      path: dir,
      self,
      source: self.kept ? [] : sourceKids.get(dir) ?? [],
      replica: self.replica ? replicaKids.get(dir) ?? [] : [],
      changed: changed.get(dir) ?? NONE,
      incomplete: unread,
      holdsExcluded: (name) => holdsExcluded.has(dir === "" ? name : `${dir}/${name}`),
      hasTemps: withTemps.has(dir),
      deletions,
      owners: options.owners,
    });
    if (folder.opening) opening.push(folder.opening);
    if (folder.attributes) attributes.push(folder.attributes);
    for (const item of folder.items) {
      const path = dir === "" ? item.name : `${dir}/${item.name}`;
      if (item.removal) removals.push(item.removal);
      if (item.kept) kept.push({ path, ...item.kept });
      if (item.write) writes.push(item.write);
      if (item.descend) visit(path, item.descend, unread);
      else if (item.kept) visit(path, { replica: replica.get(path)!, kept: true }, unread);
    }
  };
  const roots = options.roots;
  visit(
    "",
    roots ? { source: roots.source, replica: roots.replica } : { replica: rootEntry },
    false,
  );
  // Say so when it matters: something in it was removed, or the source's entry cannot be made.
  const emptied = new Set<string>();
  for (const { path } of removals) {
    for (let dir = parentOf(path); dir !== ""; dir = parentOf(dir)) emptied.add(dir);
  }
  const keeps: Action[] = kept.filter(({ path, blocks }) =>
    blocks !== undefined || emptied.has(path)
  ).map(({ path, blocks }) =>
    blocks === undefined ? { op: "keep", path } : { op: "keep", path, blocks }
  );
  // Deepest first: a child folder's attributes never touch its parent's mtime,
  // but the order keeps a read-only parent last.
  attributes.sort((a, b) => comparePaths(b.path, a.path));
  return [...opening, ...temps, ...removals, ...keeps, ...writes, ...attributes];
}

/** A stand-in for the replica root's entry when no roots are given: it exists. */
const rootEntry: Entry = { kind: "dir", size: 0, mtimeMs: 0, ctimeMs: 0, ino: 0, mode: 0o700 };

/** Folder path -> its entries, sorted by name. */
function childrenOf(tree: Tree): Map<string, Child[]> {
  const children = new Map<string, Child[]>();
  for (const path of [...tree.keys()].sort(comparePaths)) {
    const dir = parentOf(path);
    let list = children.get(dir);
    if (list === undefined) children.set(dir, list = []);
    list.push({ name: path.slice(dir === "" ? 0 : dir.length + 1), entry: tree.get(path)! });
  }
  return children;
}

const NONE: ReadonlySet<string> = new Set();

/** Folder path -> the names in it of the paths in `paths`. */
function namesByFolder(paths: ReadonlySet<string>): Map<string, Set<string>> {
  const names = new Map<string, Set<string>>();
  for (const path of paths) {
    const dir = parentOf(path);
    let set = names.get(dir);
    if (set === undefined) names.set(dir, set = new Set());
    set.add(path.slice(dir === "" ? 0 : dir.length + 1));
  }
  return names;
}

/**
 * How many replica entries `actions` delete: each removed entry plus
 * everything below a removed folder.
 *
 * @param actions a plan (see {@link plan}).
 * @param replica the replica tree the plan was made for.
 * @returns the number of replica entries the plan removes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { deletedEntries, plan } from "./plan.ts";
 * import type { Entry } from "../core/entry.ts";
 * const dir: Entry = { kind: "dir", size: 0, mtimeMs: 0, ctimeMs: 0, ino: 1, mode: 0o755 };
 * const file: Entry = { ...dir, kind: "file", ino: 2, mode: 0o644 };
 * const replica = new Map([["d", dir], ["d/a", file], ["d/b", file]]);
 * const actions = plan(new Map(), replica, { changed: new Set() });
 * assert.equal(deletedEntries(actions, replica), 3);
 * ```
 */
export function deletedEntries(actions: readonly Action[], replica: Tree): number {
  const removed = new Set<string>();
  for (const action of actions) if (action.op === "remove") removed.add(action.path);
  if (removed.size === 0) return 0;
  let count = 0;
  for (const path of replica.keys()) {
    if (removed.has(path) || hasAncestorIn(path, removed)) count++;
  }
  return count;
}

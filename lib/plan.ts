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
import type { Entry, Kind, Owner, Tree } from "./entry.ts";
import { comparePaths, hasAncestorIn, parentOf } from "./paths.ts";

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
  /** Create the symlink (`update`: replace one with another target), owned
   * like the source's (`uid`, `gid`) where the apply stage may. */
  | {
    readonly op: "symlink";
    readonly path: string;
    readonly target: string;
    readonly update: boolean;
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
  /** Set a symlink's owner (symlinks have no permission bits of their own). */
  | { readonly op: "lchown"; readonly path: string; readonly owner: Owner }
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
 * import type { Entry } from "./entry.ts";
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

/**
 * Plan the actions that turn `replica` into `source`.
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
 * import type { Entry } from "./entry.ts";
 * const file: Entry = { kind: "file", size: 1, mtimeMs: 0, ctimeMs: 0, ino: 1, mode: 0o644 };
 * const actions = plan(new Map([["a", file]]), new Map(), { changed: new Set() });
 * assert.ok(actions[0]?.op === "copy");
 * ```
 */
export function plan(source: Tree, replica: Tree, options: PlanOptions): Action[] {
  const incomplete = options.incomplete ?? new Set<string>();
  const deletions = options.deletions ?? true;
  const holdsExcluded = options.holdsExcluded ?? new Set<string>();
  const owners = options.owners;
  const temps: Action[] = (options.temps ?? []).map(({ path, kind }) => ({
    op: "remove",
    path,
    kind,
  }));
  const removals: Action[] = [];
  const removedDirs = new Set<string>();
  const kept: { path: string; blocks?: Kind }[] = [];
  for (const path of deletions ? sortedKeys(replica) : []) {
    const dst = replica.get(path)!;
    const src = source.get(path);
    if (src?.kind === dst.kind) continue;
    if (hasAncestorIn(path, removedDirs)) continue;
    if (src === undefined && hasAncestorIn(path, incomplete)) continue;
    if (dst.kind === "dir" && holdsExcluded.has(path)) {
      // Never removed with what it holds: its other entries are removed one by one.
      kept.push(src === undefined ? { path } : { path, blocks: src.kind });
      continue;
    }
    removals.push({ op: "remove", path, kind: dst.kind });
    if (dst.kind === "dir") removedDirs.add(path);
  }
  // Say so when it matters: something in it was removed, or the source's entry cannot be made.
  const emptied = new Set<string>();
  for (const { path } of removals) {
    for (let dir = parentOf(path); dir !== ""; dir = parentOf(dir)) emptied.add(dir);
  }
  const keeps: Action[] = kept.filter(({ path, blocks }) =>
    blocks !== undefined || emptied.has(path)
  )
    .map(({ path, blocks }) =>
      blocks === undefined ? { op: "keep", path } : { op: "keep", path, blocks }
    );
  const conflicts = new Set(kept.filter((k) => k.blocks !== undefined).map((k) => k.path));

  const writes: Action[] = [];
  /** Folders (source side) to set at the end: the created ones are quiet. */
  const folders: { path: string; src: Entry; dst: Entry | undefined }[] = [];
  const blocked = new Set<string>(); // type changes kept because deletions are off
  for (const path of sortedKeys(source)) {
    const src = source.get(path)!;
    const dst = replica.get(path);
    if (
      (!deletions &&
        ((dst !== undefined && dst.kind !== src.kind) || hasAncestorIn(path, blocked))) ||
      conflicts.has(path) || hasAncestorIn(path, conflicts)
    ) {
      blocked.add(path);
      continue;
    }
    const present = dst?.kind === src.kind ? dst : undefined;
    switch (src.kind) {
      case "dir": {
        if (present === undefined) writes.push({ op: "mkdir", path, mode: src.mode | 0o700 });
        folders.push({ path, src, dst: present });
        break;
      }
      case "file":
        if (
          present === undefined || present.size !== src.size || options.changed.has(path)
        ) {
          writes.push({ op: "copy", path, source: src, update: present !== undefined });
        } else {
          const owner = ownerChange(src, present, owners);
          if (present.mode !== src.mode || present.mtimeMs !== src.mtimeMs || owner) {
            writes.push({
              op: "touch",
              path,
              source: src,
              replica: present,
              ...(owner ? { owner } : {}),
            });
          }
        }
        break;
      case "symlink": {
        if (present?.target !== src.target) {
          writes.push({
            op: "symlink",
            path,
            target: src.target ?? "",
            update: present !== undefined,
            ...(src.uid === undefined ? {} : { uid: src.uid }),
            ...(src.gid === undefined ? {} : { gid: src.gid }),
          });
        } else {
          const owner = ownerChange(src, present, owners);
          if (owner) writes.push({ op: "lchown", path, owner });
        }
        break;
      }
      case "other":
        break; // FIFOs, sockets and devices are not mirrored.
    }
  }
  // Every folder this plan writes in (its mtime changes) gets its attributes back.
  const writtenIn = new Set<string>();
  for (const action of [...temps, ...removals, ...writes]) {
    if (action.op !== "touch" && action.op !== "lchown") writtenIn.add(parentOf(action.path));
  }
  if (options.roots) folders.unshift({ path: "", ...swap(options.roots) });
  const opening: Action[] = [], attributes: Action[] = [];
  for (const { path, src, dst } of folders) {
    const owner = ownerChange(src, dst, owners);
    const wrote = writtenIn.has(path);
    const sameMode = dst !== undefined && dst.mode === src.mode;
    const sameTime = dst !== undefined && dst.mtimeMs === src.mtimeMs;
    if (sameMode && sameTime && owner === undefined && !wrote) continue;
    // A replica folder the mirror may not write in (no owner rwx) is opened first.
    if (wrote && dst !== undefined && (dst.mode & 0o700) !== 0o700) {
      opening.push({
        op: "folder",
        path,
        mode: dst.mode | 0o700,
        mtimeMs: dst.mtimeMs,
        quiet: true,
        opening: true,
      });
    }
    // Quiet: the replica root (not an entry of the tree), a new folder, or
    // one whose mtime alone differs while this cycle writes in it (its
    // entries changed in the source, which moved the source folder's mtime).
    const quiet = path === "" || dst === undefined ||
      (sameMode && owner === undefined && (sameTime || wrote));
    attributes.push({
      op: "folder",
      path,
      mode: src.mode,
      mtimeMs: src.mtimeMs,
      ...(owner ? { owner } : {}),
      quiet,
      ...(sameMode && sameTime && owner !== undefined ? { ownerOnly: true } : {}),
    });
  }
  // A kept folder (it holds excluded entries) the mirror may not write in is
  // opened for the removals in it, and closed again with its own attributes.
  for (const { path } of kept) {
    const dst = replica.get(path)!;
    if (!writtenIn.has(path) || (dst.mode & 0o700) === 0o700) continue;
    const own = { op: "folder" as const, path, mtimeMs: dst.mtimeMs, quiet: true };
    opening.push({ ...own, mode: dst.mode | 0o700, opening: true });
    attributes.push({ ...own, mode: dst.mode });
  }
  // Deepest first: a child folder's attributes never touch its parent's mtime,
  // but the order keeps a read-only parent last.
  attributes.sort((a, b) => comparePaths(a.path, b.path));
  attributes.reverse();
  return [...opening, ...temps, ...removals, ...keeps, ...writes, ...attributes];
}

function swap(roots: { source: Entry; replica: Entry }): { src: Entry; dst: Entry } {
  return { src: roots.source, dst: roots.replica };
}

/**
 * Paths in an order where a folder comes first, followed by its whole subtree
 * (code-unit order with `/` below every other character: `a`, `a/x`, `a b`).
 * Scans produce this order already, and sorting sorted input is linear.
 */
function sortedKeys(tree: Tree): string[] {
  return [...tree.keys()].sort(comparePaths);
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
 * import type { Entry } from "./entry.ts";
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

/**
 * The planner: a pure function from two trees to the ordered list of actions
 * that makes the replica equal to the source. It reads no disk; which
 * same-size files differ in content is an input.
 *
 * Order: removals first (a removed folder takes its contents with it, and a
 * path whose type changes is removed before it is recreated); then creations
 * and updates in path order, each folder followed by its whole subtree (so
 * parents come before children, and a new folder can be filled at once); last, folder
 * permission changes (a read-only folder is made read-only only after
 * everything has been written into it).
 *
 * @module
 */
import { type Entry, hasAncestorIn, type Kind, parentOf, type Tree } from "./entry.ts";

/** One step of a plan. Paths are relative to the roots. */
export type Action =
  /** Remove the replica entry (recursively for a folder). */
  | { readonly op: "remove"; readonly path: string; readonly kind: Kind }
  /** Create a folder with `mode` (the source's bits plus owner rwx, so it can be filled). */
  | { readonly op: "mkdir"; readonly path: string; readonly mode: number }
  /** Copy the source file over (`update`: a replica file of different content exists). */
  | { readonly op: "copy"; readonly path: string; readonly source: Entry; readonly update: boolean }
  /** Create the symlink (`update`: replace one with another target). */
  | {
    readonly op: "symlink";
    readonly path: string;
    readonly target: string;
    readonly update: boolean;
  }
  /** Same content; set the file's permission bits and mtime to the source's
   * (`replica`: the replica file as scanned). */
  | {
    readonly op: "touch";
    readonly path: string;
    readonly source: Entry;
    readonly replica: Entry;
  }
  /** Set a folder's permission bits. */
  | { readonly op: "chmod"; readonly path: string; readonly mode: number }
  /** Not an action on the disk: the replica folder is kept, though the source
   * lacks it (or has another kind of entry there, `blocks`), because it holds
   * excluded entries; its other contents are removed. */
  | { readonly op: "keep"; readonly path: string; readonly blocks?: Kind };

/** Inputs beyond the two trees. */
export interface PlanOptions {
  /** Same-size file pairs whose content differs. */
  readonly changed: ReadonlySet<string>;
  /** Source folders whose listing is incomplete (`""` is the root): nothing under
   * them is removed from the replica. Default: none. */
  readonly incomplete?: ReadonlySet<string>;
  /** When false, nothing in the replica is removed: replica-only entries stay,
   * and a path whose type differs is left alone (with everything below it).
   * Default `true`. */
  readonly deletions?: boolean;
  /** Replica folders that hold excluded entries, at any depth (they are in
   * neither tree): such a folder is never removed; its other contents are.
   * Default: none. */
  readonly holdsExcluded?: ReadonlySet<string>;
}

/**
 * Plan the actions that turn `replica` into `source`.
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
  const modes: Action[] = [];
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
        const mode = src.mode | 0o700;
        if (present === undefined) writes.push({ op: "mkdir", path, mode });
        if ((present?.mode ?? mode) !== src.mode) modes.push({ op: "chmod", path, mode: src.mode });
        break;
      }
      case "file":
        if (
          present === undefined || present.size !== src.size || options.changed.has(path)
        ) {
          writes.push({ op: "copy", path, source: src, update: present !== undefined });
        } else if (present.mode !== src.mode || present.mtimeMs !== src.mtimeMs) {
          writes.push({ op: "touch", path, source: src, replica: present });
        }
        break;
      case "symlink":
        if (present?.target !== src.target) {
          writes.push({
            op: "symlink",
            path,
            target: src.target ?? "",
            update: present !== undefined,
          });
        }
        break;
      case "other":
        break; // FIFOs, sockets and devices are not mirrored.
    }
  }
  return [...removals, ...keeps, ...writes, ...modes];
}

/**
 * Paths in an order where a folder comes first, followed by its whole subtree
 * (code-unit order with `/` below every other character: `a`, `a/x`, `a b`).
 * Scans produce this order already, and sorting sorted input is linear.
 */
function sortedKeys(tree: Tree): string[] {
  return [...tree.keys()].sort(comparePaths);
}

/** Compare paths code unit by code unit, `/` ranking below everything else. */
export function comparePaths(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x !== y) return (x === 47 ? -1 : x) - (y === 47 ? -1 : y);
  }
  return a.length - b.length;
}

/**
 * How many replica entries `actions` delete: each removed entry plus
 * everything below a removed folder.
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

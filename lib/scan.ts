/**
 * Walk one tree, through its {@link TreeReader}, folder by folder, into
 * {@link Entry} records. Symlinks are never followed. A failure on one item
 * is recorded as data and the walk goes on.
 *
 * @module
 */
import { asError } from "./error.ts";
import { pacer } from "./pace.ts";
import { PackedTree } from "./tree.ts";
import type { ExcludeMatcher } from "./exclude.ts";
import type { Entry, Kind, Tree } from "./entry.ts";
import { hasAncestorIn, parentOf } from "./paths.ts";
import type { Listing, TreeReader } from "./replica.ts";

/** A path that could not be read, and why. */
export interface Problem {
  readonly path: string;
  readonly error: Error;
}

/** What one walk found. */
export interface Scan {
  /** Every file, folder and symlink under the root (FIFOs, sockets and devices too,
   * as kind `other`). */
  readonly tree: Tree;
  /** Items that could not be listed or examined. */
  readonly problems: readonly Problem[];
  /** Folders (`""` is the root) whose listing is incomplete: something under them
   * may exist that `tree` does not show. */
  readonly incomplete: ReadonlySet<string>;
  /** The program's own temp files and folders found (left by an interrupted run). */
  readonly temps: readonly { readonly path: string; readonly kind: Kind }[];
  /** Folders (`""` is the root) that hold an excluded entry, at any depth. */
  readonly holdsExcluded: ReadonlySet<string>;
  /** Wall-clock time just before the walk started, epoch ms. */
  readonly startedAt: number;
  /** The root folder itself, as found when the walk started (undefined if it
   * could not be examined). */
  readonly root?: Entry;
}

/** Options of {@link scanTree}. */
export interface ScanOptions {
  /**
   * Scan only these folders (paths relative to the root): the items directly
   * in each, and with `deep` everything below them too. A listed folder that
   * does not exist is marked incomplete, not reported.
   *
   * @default the whole tree
   */
  readonly folders?: readonly { readonly path: string; readonly deep: boolean }[];
  /**
   * Paths to leave out as if they did not exist (nor anything below an excluded
   * folder).
   *
   * @default none
   */
  readonly exclude?: ExcludeMatcher;
  /**
   * Which names are the program's own temp files and folders: they go to
   * {@link Scan.temps}, not into the tree.
   *
   * @default none (every name is an entry)
   */
  readonly isTemp?: (name: string) => boolean;
  /**
   * Stops the walk (it then throws the signal's reason). The walk hands
   * control back every few milliseconds, so that a signal can be heard.
   *
   * @default never
   */
  readonly signal?: AbortSignal;
}

/**
 * Walk the tree `reader` reads, folder by folder, recursively, or only the
 * folders `options` names. Entries come depth first with siblings sorted, so
 * the tree's order already is the planner's order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalTree } from "./local.ts";
 * import { scanTree } from "./scan.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/a.txt`, "hi");
 * const scan = await scanTree(new LocalTree(dir));
 * assert.ok(scan.tree.get("a.txt")?.size === 2);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export async function scanTree(reader: TreeReader, options: ScanOptions = {}): Promise<Scan> {
  const startedAt = Date.now();
  const tree = new PackedTree();
  const problems: Problem[] = [];
  const incomplete = new Set<string>();
  const temps: { path: string; kind: Kind }[] = [];
  const holdsExcluded = new Set<string>();
  const partial = options.folders !== undefined;
  const exclude = options.exclude;
  const isTemp = options.isTemp;
  const pending = [...(options.folders ?? [{ path: "", deep: true }])].reverse();
  const pace = pacer(), signal = options.signal;
  // A partial walk also records each folder it was asked to list (a full walk
  // gets every folder from its parent's listing).
  const named = new Set(partial ? options.folders!.map((folder) => folder.path) : []);
  const rootEntry = await examine(reader, "", []);
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    await pace();
    signal?.throwIfAborted();
    const { path: dir, deep } = next;
    if (dir !== "" && named.has(dir)) {
      // An excluded folder (or one below an excluded folder) is not looked at.
      if (excludedFolder(exclude, dir)) continue;
      if (tree.get(dir) === undefined) {
        const entry = await examine(reader, dir, problems);
        if (typeof entry === "object" && entry.kind === "dir") tree.set(dir, entry);
        else if (entry === undefined) incomplete.add(parentOf(dir)); // could not be examined
      }
    }
    const prefix = dir === "" ? "" : `${dir}/`;
    let listing: Listing;
    try {
      listing = await reader.list(dir);
    } catch (error) {
      // A folder named by a partial scan may be gone already. When its parent
      // is listed in the same scan, that listing says so (and what was in it
      // goes); otherwise nothing below it is decided on this scan.
      const gone = partial && dir !== "" && error instanceof Deno.errors.NotFound;
      if (!gone) problems.push({ path: dir, error: asError(error) });
      if (!gone || !named.has(parentOf(dir))) incomplete.add(dir);
      continue;
    }
    for (const { name, error } of listing.problems) problems.push({ path: prefix + name, error });
    if (listing.problems.length > 0) incomplete.add(dir);
    const subfolders: string[] = [];
    for (const { name, entry } of listing.entries) {
      const path = prefix + name;
      const isDirectory = entry.kind === "dir";
      if (isTemp?.(name)) {
        temps.push({ path, kind: entry.kind });
        continue;
      }
      if (exclude?.(path, isDirectory)) {
        for (let at = dir; !holdsExcluded.has(at); at = parentOf(at)) {
          holdsExcluded.add(at);
          if (at === "") break;
        }
        continue;
      }
      tree.set(path, entry);
      if (deep && isDirectory) subfolders.push(path);
    }
    // Depth first, siblings in order: each folder is followed by its subtree.
    for (let i = subfolders.length - 1; i >= 0; i--) pending.push({ path: subfolders[i]!, deep });
  }
  return {
    tree,
    problems,
    incomplete,
    temps,
    holdsExcluded,
    startedAt,
    ...(typeof rootEntry === "object" ? { root: rootEntry } : {}),
  };
}

/**
 * Scan both sides for a partial cycle: the folders holding `paths`, each path
 * that is a folder (deeply: it may have just been created or moved in), and
 * deeply any source folder found whose replica twin is missing.
 */
export async function scanAround(
  trees: { readonly source: TreeReader; readonly replica: TreeReader },
  paths: ReadonlySet<string>,
  exclude: ExcludeMatcher | undefined,
  isTemp?: (name: string) => boolean,
  signal?: AbortSignal,
): Promise<{ source: Scan; replica: Scan }> {
  const deep = new Set<string>();
  const shallow = new Set<string>();
  for (const path of paths) {
    shallow.add(path === "" ? "" : parentOf(path));
    try {
      if (path !== "" && (await trees.source.stat(path))?.kind === "dir") deep.add(path);
    } catch {
      // gone: the scan of its folder tells
    }
  }
  const folders = [
    ...[...deep].filter((dir) => !hasAncestorIn(dir, deep)).map((path) => ({ path, deep: true })),
    ...[...shallow].filter((dir) => !deep.has(dir) && !hasAncestorIn(dir, deep))
      .map((path) => ({ path, deep: false })),
  ];
  const source = await scanTree(trees.source, { folders, exclude, signal });
  const replica = await scanTree(trees.replica, { folders, exclude, isTemp, signal });
  // A folder only one side has as a folder was listed, not looked into: in
  // the source it is copied whole, in the replica removed whole (unless it
  // holds excluded entries), so look into it.
  const onlyIn = (one: Scan, other: Scan) =>
    [...one.tree].filter(([path, entry]) =>
      entry.kind === "dir" && other.tree.get(path)?.kind !== "dir" && !deep.has(path) &&
      !hasAncestorIn(path, deep)
    ).map(([path]) => ({ path, deep: true }));
  const sourceOnly = onlyIn(source, replica), replicaOnly = onlyIn(replica, source);
  return {
    source: sourceOnly.length === 0
      ? source
      : joined(source, await scanTree(trees.source, { folders: sourceOnly, exclude, signal })),
    replica: replicaOnly.length === 0 ? replica : joined(
      replica,
      await scanTree(trees.replica, { folders: replicaOnly, exclude, isTemp, signal }),
    ),
  };
}

/** Whether the folder `dir` or any folder above it is excluded. */
function excludedFolder(exclude: ExcludeMatcher | undefined, dir: string): boolean {
  if (exclude === undefined) return false;
  for (let at = dir; at !== ""; at = parentOf(at)) if (exclude(at, true)) return true;
  return false;
}

/** One scan of what `a` and `b` found (`b`'s entries win for paths in both). */
function joined(a: Scan, b: Scan): Scan {
  const tree = new PackedTree();
  for (const [path, entry] of a.tree) tree.set(path, entry);
  for (const [path, entry] of b.tree) tree.set(path, entry);
  return {
    tree,
    problems: [...a.problems, ...b.problems],
    incomplete: new Set([...a.incomplete, ...b.incomplete]),
    temps: [...a.temps, ...b.temps],
    holdsExcluded: new Set([...a.holdsExcluded, ...b.holdsExcluded]),
    startedAt: Math.min(a.startedAt, b.startedAt),
    ...(a.root ? { root: a.root } : {}),
  };
}

/** Examine one item: its entry, `"gone"` if it vanished meanwhile, or undefined
 * (with a problem recorded) if it could not be examined. */
async function examine(
  reader: TreeReader,
  path: string,
  problems: Problem[],
): Promise<Entry | "gone" | undefined> {
  try {
    return (await reader.stat(path)) ?? "gone";
  } catch (error) {
    problems.push({ path, error: asError(error) });
    return undefined;
  }
}

/**
 * Walk one tree, through its {@link TreeReader}, folder by folder, into
 * {@link Entry} records. Symlinks are never followed. A failure on one item
 * is recorded as data and the walk goes on.
 *
 * @module
 */
import { asError } from "../core/error.ts";
import { pacer } from "../core/pace.ts";
import { PackedTree } from "../core/tree.ts";
import type { ExcludeMatcher } from "../core/exclude.ts";
import type { Entry, Kind, Tree } from "../core/entry.ts";
import { parentOf } from "../core/paths.ts";
import type { Listing, TreeReader } from "../core/replica.ts";

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
 * Walk the tree `reader` reads, folder by folder, recursively (`--verify`). Entries come depth first with siblings sorted, so
 * the tree's order already is the planner's order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalTree } from "../backends/local/local.ts";
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
  const exclude = options.exclude;
  const isTemp = options.isTemp;
  const pending = [""];
  const pace = pacer(), signal = options.signal;
  const rootEntry = await examine(reader, "", []);
  for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
    await pace();
    signal?.throwIfAborted();
    const prefix = dir === "" ? "" : `${dir}/`;
    let listing: Listing;
    try {
      listing = await reader.list(dir);
    } catch (error) {
      problems.push({ path: dir, error: asError(error) });
      incomplete.add(dir);
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
      if (isDirectory) subfolders.push(path);
    }
    // Depth first, siblings in order: each folder is followed by its subtree.
    for (let i = subfolders.length - 1; i >= 0; i--) pending.push(subfolders[i]!);
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

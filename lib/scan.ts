/**
 * Walk one tree into {@link Entry} records. Symlinks are never followed. A
 * failure on one item is recorded as data and the walk goes on.
 *
 * The sync file-system calls are used on purpose: they are several times
 * faster than the async ones in Deno (see FACTS.md).
 *
 * @module
 */
import { asError } from "./error.ts";
import {
  type Entry,
  entryFromInfo,
  INDEX_NAME,
  joinPath,
  type Kind,
  TEMP_PREFIX,
  type Tree,
} from "./entry.ts";

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
  /** Wall-clock time just before the walk started, epoch ms. */
  readonly startedAt: number;
}

/**
 * Walk `root` (a folder) recursively.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { scanTree } from "./scan.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/a.txt`, "hi");
 * const scan = scanTree(dir);
 * assert.ok(scan.tree.get("a.txt")?.size === 2);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function scanTree(root: string): Scan {
  const startedAt = Date.now();
  const tree = new Map<string, Entry>();
  const problems: Problem[] = [];
  const incomplete = new Set<string>();
  const temps: { path: string; kind: Kind }[] = [];
  const pending: string[] = [""];
  for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
    const prefix = dir === "" ? "" : `${dir}/`;
    try {
      for (const item of Deno.readDirSync(joinPath(root, dir))) {
        const path = prefix + item.name;
        if (item.name.startsWith(TEMP_PREFIX)) {
          temps.push({ path, kind: item.isDirectory ? "dir" : "file" });
          continue;
        }
        if (dir === "" && item.name === INDEX_NAME) continue;
        const entry = examine(root, path, problems);
        if (entry === "gone") continue;
        if (entry === undefined) {
          incomplete.add(dir);
          continue;
        }
        tree.set(path, entry);
        if (entry.kind === "dir") pending.push(path);
      }
    } catch (error) {
      problems.push({ path: dir, error: asError(error) });
      incomplete.add(dir);
    }
  }
  return { tree, problems, incomplete, temps, startedAt };
}

/** lstat one item: its entry, `"gone"` if it vanished meanwhile, or undefined
 * (with a problem recorded) if it could not be examined. */
function examine(root: string, path: string, problems: Problem[]): Entry | "gone" | undefined {
  const abs = joinPath(root, path);
  try {
    const info = Deno.lstatSync(abs);
    return entryFromInfo(info, info.isSymlink ? Deno.readLinkSync(abs) : undefined);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "gone";
    problems.push({ path, error: asError(error) });
    return undefined;
  }
}

/**
 * Decide which files present on both sides with the same size differ in
 * content, by MD5. A pair whose stat keys both match the {@link PairIndex} is
 * not read at all; when one side changed, only that side is read (both, for
 * a pair the mirror wrote itself and whose MD5 was never read).
 *
 * @module
 */
import { type Entry, statKey } from "./entry.ts";
import { asError } from "./error.ts";
import { pacer } from "./pace.ts";
import type { PairIndex } from "./pair_index.ts";
import type { TreeReader } from "./replica.ts";
import type { Problem, Scan } from "./scan.ts";

/** Result of {@link findChangedFiles}. */
export interface Comparison {
  /** Same-size file pairs whose bytes differ (or whose replica side is unreadable). */
  readonly changed: ReadonlySet<string>;
  /** Source files that could not be read; their replica twin is left as it is. */
  readonly problems: readonly Problem[];
  /** The MD5 of each source file read this cycle (the index may not keep
   * it: a key too new to trust), for the same cycle's tree digest. */
  readonly sourceMd5s: ReadonlyMap<string, string>;
}

/**
 * Compare every same-size file pair of the two scans by MD5, updating `index`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { findChangedFiles } from "./compare.ts";
 * import { LocalTree } from "./local.ts";
 * import { PairIndex } from "./pair_index.ts";
 * import { scanTree } from "./scan.ts";
 * const a = Deno.makeTempDirSync(), b = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${a}/f`, "one");
 * Deno.writeTextFileSync(`${b}/f`, "two");
 * const trees = { source: new LocalTree(a), replica: new LocalTree(b) };
 * const scans = [await scanTree(trees.source), await scanTree(trees.replica)] as const;
 * const result = await findChangedFiles(trees, ...scans, new PairIndex());
 * assert.ok(result.changed.has("f"));
 * Deno.removeSync(a, { recursive: true });
 * Deno.removeSync(b, { recursive: true });
 * ```
 */
export async function findChangedFiles(
  trees: { readonly source: TreeReader; readonly replica: TreeReader },
  source: Scan,
  replica: Scan,
  index: PairIndex,
  signal?: AbortSignal,
): Promise<Comparison> {
  const changed = new Set<string>();
  const problems: Problem[] = [];
  const sourceMd5s = new Map<string, string>();
  const observedAt = Math.min(source.startedAt, replica.startedAt);
  const pace = pacer();
  for (const [path, src] of source.tree) {
    const dst = replica.tree.get(path);
    if (src.kind !== "file" || dst?.kind !== "file") continue;
    signal?.throwIfAborted();
    const found = await comparePair(trees, path, src, dst, index, observedAt, signal);
    if (found.sourceMd5 !== undefined) sourceMd5s.set(path, found.sourceMd5);
    if (found.problem) problems.push(found.problem);
    else if (found.differs) changed.add(path);
    if (found.read) await pace();
  }
  return { changed, problems, sourceMd5s };
}

/** What {@link comparePair} found. */
export interface PairVerdict {
  /** The two files' bytes differ (or the replica side could not be read). */
  readonly differs: boolean;
  /** The source side could not be read: the pair is left as it is. */
  readonly problem?: Problem;
  /** The source file's MD5, when known now (read, or from the index). */
  readonly sourceMd5?: string;
  /** Whether any byte was read. */
  readonly read: boolean;
}

/**
 * Compare one file pair listed on both sides: by size, then through
 * `index`, reading what the index does not vouch for. Updates `index`.
 *
 * @param trees the two trees the files are in.
 * @param path the pair's path relative to the roots.
 * @param src the source file as listed.
 * @param dst the replica file as listed.
 * @param index the known pairs, updated with what is learnt.
 * @param observedAt when the listings were made (epoch ms), for `isSettled`.
 * @param signal stops the reading early (it then throws).
 * @returns whether the files differ, and the source's MD5 when known.
 */
export async function comparePair(
  trees: { readonly source: TreeReader; readonly replica: TreeReader },
  path: string,
  src: Entry,
  dst: Entry,
  index: PairIndex,
  observedAt: number,
  signal?: AbortSignal,
): Promise<PairVerdict> {
  if (src.size !== dst.size) {
    index.forget(path);
    return { differs: true, read: false };
  }
  const sourceKnown = index.knows(path, "source", src);
  const replicaKnown = index.knows(path, "replica", dst);
  const knownMd5 = sourceKnown || replicaKnown ? index.md5(path) : undefined;
  if (sourceKnown && replicaKnown) {
    return knownMd5 === undefined
      ? { differs: false, read: false }
      : { differs: false, sourceMd5: knownMd5, read: false };
  }
  // A side the index vouches for needs no reading.
  const md5Of = (side: "source" | "replica", entry: Entry, known: boolean) =>
    known && knownMd5 !== undefined ? knownMd5 : hashStable(trees[side], path, entry, signal);
  let sourceMd5: string | undefined;
  try {
    sourceMd5 = await md5Of("source", src, sourceKnown);
  } catch (error) {
    if (signal?.aborted) throw error;
    // A file that vanished meanwhile is the next walk's business.
    if (error instanceof Deno.errors.NotFound) return { differs: false, read: true };
    return { differs: false, problem: { path, error: asError(error) }, read: true };
  }
  let replicaMd5: string | undefined;
  try {
    replicaMd5 = await md5Of("replica", dst, replicaKnown);
  } catch (error) {
    if (signal?.aborted) throw error;
    // An unreadable replica file is simply replaced.
  }
  const verdict = sourceMd5 === undefined ? { read: true } : { sourceMd5, read: true };
  if (sourceMd5 !== undefined && replicaMd5 === sourceMd5) {
    index.record(path, src, dst, sourceMd5, observedAt);
    return { ...verdict, differs: false };
  }
  // Keep what was learnt of the source side: the digest and the next
  // comparison need not read it again.
  if (sourceMd5 === undefined) index.forget(path);
  else index.recordSource(path, src, sourceMd5, observedAt);
  return { ...verdict, differs: true };
}

/** MD5 of the file, or undefined (matching nothing) if it changed while being read. */
async function hashStable(
  tree: TreeReader,
  path: string,
  scanned: Entry,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const md5 = await tree.md5(path, scanned.size, signal);
  const now = await tree.stat(path);
  if (now === undefined) throw new Deno.errors.NotFound(`${path} is gone`);
  return statKey(now) === statKey(scanned) ? md5 : undefined;
}

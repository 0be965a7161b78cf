/**
 * Decide whether a file present on both sides with the same size differs in
 * content, by MD5. A pair whose stat keys both match the {@link PairIndex} is
 * not read at all; when one side changed, only that side is read (both, for
 * a pair the mirror wrote itself and whose MD5 was never read).
 *
 * @module
 */
import { type Entry, statKey } from "../core/entry.ts";
import { asError } from "../core/error.ts";
import type { PairIndex } from "../state/pair_index.ts";
import type { TreeReader } from "../core/replica.ts";
import type { Problem } from "./scan.ts";

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

/**
 * What the program remembers between cycles, and between runs, about file
 * contents: for each file pair last found identical, the stat keys of both
 * sides at that moment and their MD5. While both keys are unchanged, the pair
 * is trusted without reading a byte; when one side changed, the other side's
 * MD5 is known without reading it.
 *
 * The index is kept in the replica root as `.mirror.index` (written under a
 * temp name and renamed), the only place the program may write besides the
 * log file. A missing or unreadable index just means hashing once more.
 *
 * @module
 */
import type { Disk } from "./disk.ts";
import {
  type Entry,
  INDEX_NAME,
  isSettled,
  joinPath,
  keyOf,
  sameKey,
  type StatKey,
  tempName,
} from "./entry.ts";

/** A pair of files found identical (or a source file alone, read for the digest). */
export interface Pair {
  /** The source file's stat key then. */
  readonly source: StatKey;
  /** The replica file's stat key then; undefined when only the source was read. */
  readonly replica: StatKey | undefined;
  /** Their MD5. */
  readonly md5: string;
}

const VERSION = 2;

/** Path -> {@link Pair}, persisted in the replica root. */
export class PairIndex {
  readonly #pairs = new Map<string, Pair>();
  #dirty = false;

  /** The index stored in `replicaRoot`, or an empty one. */
  static load(replicaRoot: string): PairIndex {
    const index = new PairIndex();
    try {
      const data = JSON.parse(Deno.readTextFileSync(joinPath(replicaRoot, INDEX_NAME)));
      if (data?.version !== VERSION || !Array.isArray(data.pairs)) return index;
      for (const [path, source, replica, md5] of data.pairs) {
        index.#pairs.set(path, { source, replica: replica ?? undefined, md5 });
      }
    } catch {
      // Missing or damaged: start empty, every pair is hashed once.
    }
    return index;
  }

  get size(): number {
    return this.#pairs.size;
  }

  /** The pair last found identical at `path`, if any. */
  get(path: string): Pair | undefined {
    return this.#pairs.get(path);
  }

  /**
   * Record that `source` and `replica` hold the same bytes with MD5 `md5`.
   * Kept only when both keys are settled at `observedAt` (see `isSettled`).
   */
  record(path: string, source: Entry, replica: Entry, md5: string, observedAt: number): void {
    if (isSettled(source, observedAt) && isSettled(replica, observedAt)) {
      const old = this.#pairs.get(path);
      if (sameKey(old?.source, source) && sameKey(old?.replica, replica) && old?.md5 === md5) {
        return;
      }
      this.#pairs.set(path, { source: keyOf(source), replica: keyOf(replica), md5 });
      this.#dirty = true;
    } else {
      this.forget(path);
    }
  }

  /**
   * Record the MD5 of a source file read on its own (for the tree digest), so
   * that comparing it later reads only the replica side. Kept only when the
   * key is settled at `observedAt`, and never over a full pair for that key.
   */
  recordSource(path: string, source: Entry, md5: string, observedAt: number): void {
    if (!isSettled(source, observedAt) || sameKey(this.#pairs.get(path)?.source, source)) return;
    this.#pairs.set(path, { source: keyOf(source), replica: undefined, md5 });
    this.#dirty = true;
  }

  /** Drop what is known about `path`. */
  forget(path: string): void {
    if (this.#pairs.delete(path)) this.#dirty = true;
  }

  /** Drop every path for which `keep` is false. */
  retain(keep: (path: string) => boolean): void {
    for (const path of this.#pairs.keys()) if (!keep(path)) this.forget(path);
  }

  /** Write the index into `replicaRoot` if it changed since it was loaded or saved. */
  save(replicaRoot: string, disk: Disk): void {
    if (!this.#dirty) return;
    const pairs = Array.from(
      this.#pairs,
      ([path, p]) => [path, p.source, p.replica ?? null, p.md5],
    );
    const temp = joinPath(replicaRoot, tempName());
    try {
      disk.writeTextFile(temp, JSON.stringify({ version: VERSION, pairs }));
      disk.rename(temp, joinPath(replicaRoot, INDEX_NAME));
      this.#dirty = false;
    } catch (error) {
      try {
        disk.remove(temp, false);
      } catch {
        // never written
      }
      throw error;
    }
  }
}

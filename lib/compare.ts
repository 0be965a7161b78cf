/**
 * Decide which files present on both sides with the same size differ in
 * content, by MD5. Files whose pair of stat keys is unchanged since they were
 * last found equal are not read at all; otherwise each side's hash comes from
 * its {@link HashCache}.
 *
 * @module
 */
import { type Entry, isSettled, joinPath, statKey } from "./entry.ts";
import { asError } from "./error.ts";
import { HashCache } from "./hash.ts";
import type { Problem, Scan } from "./scan.ts";

/** What the program remembers between cycles about file contents. */
export class ContentState {
  readonly source = new HashCache();
  readonly replica = new HashCache();
  /** path -> `sourceKey|replicaKey` of a pair known to hold the same bytes. */
  readonly #inSync = new Map<string, string>();

  /** Bytes of file content read for hashing so far, both sides. */
  get hashedBytes(): number {
    return this.source.hashedBytes + this.replica.hashedBytes;
  }

  /** Whether the pair was last found equal with exactly these keys. */
  knownEqual(path: string, source: Entry, replica: Entry): boolean {
    return this.#inSync.get(path) === pairKey(source, replica);
  }

  /** Record that `source` and `replica` hold the same bytes; trusted later only
   * when both keys are settled at `observedAt`. */
  markEqual(path: string, source: Entry, replica: Entry, observedAt: number): void {
    if (isSettled(source, observedAt) && isSettled(replica, observedAt)) {
      this.#inSync.set(path, pairKey(source, replica));
    } else {
      this.#inSync.delete(path);
    }
  }

  /** Forget paths that are no longer in the source. */
  retain(source: ReadonlyMap<string, unknown>, replica: ReadonlyMap<string, unknown>): void {
    this.source.retain(source);
    this.replica.retain(replica);
    for (const path of this.#inSync.keys()) {
      if (!source.has(path)) this.#inSync.delete(path);
    }
  }
}

function pairKey(source: Entry, replica: Entry): string {
  return `${statKey(source)}|${statKey(replica)}`;
}

/** Result of {@link findChangedFiles}. */
export interface Comparison {
  /** Same-size file pairs whose bytes differ (or whose replica side is unreadable). */
  readonly changed: ReadonlySet<string>;
  /** Source files that could not be read; their replica twin is left as it is. */
  readonly problems: readonly Problem[];
}

/**
 * Compare every same-size file pair of the two scans by MD5.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ContentState, findChangedFiles } from "./compare.ts";
 * import { scanTree } from "./scan.ts";
 * const a = Deno.makeTempDirSync(), b = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${a}/f`, "one");
 * Deno.writeTextFileSync(`${b}/f`, "two");
 * const result = await findChangedFiles(a, b, scanTree(a), scanTree(b), new ContentState());
 * assert.ok(result.changed.has("f"));
 * ```
 */
export async function findChangedFiles(
  sourceRoot: string,
  replicaRoot: string,
  source: Scan,
  replica: Scan,
  state: ContentState,
): Promise<Comparison> {
  const changed = new Set<string>();
  const problems: Problem[] = [];
  for (const [path, src] of source.tree) {
    const dst = replica.tree.get(path);
    if (src.kind !== "file" || dst?.kind !== "file" || src.size !== dst.size) continue;
    if (state.knownEqual(path, src, dst)) continue;
    let sourceMd5: string;
    try {
      sourceMd5 = await state.source.md5(path, joinPath(sourceRoot, path), src, source.startedAt);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue; // vanished: next scan sees it
      problems.push({ path, error: asError(error) });
      continue;
    }
    let replicaMd5: string | undefined;
    try {
      replicaMd5 = await state.replica.md5(
        path,
        joinPath(replicaRoot, path),
        dst,
        replica.startedAt,
      );
    } catch {
      // An unreadable replica file is simply replaced.
    }
    if (replicaMd5 === sourceMd5) {
      state.markEqual(path, src, dst, Math.min(source.startedAt, replica.startedAt));
    } else {
      changed.add(path);
    }
  }
  return { changed, problems };
}

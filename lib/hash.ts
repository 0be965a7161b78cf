/**
 * MD5 of a file, streamed through one reused 1 MiB buffer, and a cache that
 * trusts a hash while the file's stat key (size, mtime, ctime, inode) holds.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { type Entry, entryFromInfo, isSettled, statKey } from "./entry.ts";

const CHUNK = 1 << 20;

/**
 * Hex MD5 of the file at `path`, read in 1 MiB chunks (never whole).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { md5File } from "./hash.ts";
 * const file = Deno.makeTempFileSync();
 * Deno.writeTextFileSync(file, "abc");
 * assert.ok((await md5File(file)).md5 === "900150983cd24fb0d6963f7d28e17f72");
 * Deno.removeSync(file);
 * ```
 */
export async function md5File(
  path: string,
  buffer: Uint8Array = new Uint8Array(CHUNK),
): Promise<{ md5: string; bytes: number }> {
  using file = await Deno.open(path, { read: true });
  const hash = createHash("md5");
  let bytes = 0;
  for (let n = await file.read(buffer); n !== null; n = await file.read(buffer)) {
    hash.update(buffer.subarray(0, n));
    bytes += n;
  }
  return { md5: hash.digest("hex"), bytes };
}

/**
 * Remembers the MD5 of each file of one tree, keyed by its relative path and
 * trusted only while the file's {@link statKey} is unchanged.
 */
export class HashCache {
  readonly #known = new Map<string, { key: string; md5: string }>();
  readonly #buffer = new Uint8Array(CHUNK);
  #hashedBytes = 0;

  /** Bytes of file content read so far by this cache. */
  get hashedBytes(): number {
    return this.#hashedBytes;
  }

  /**
   * MD5 of the file `path` (relative) at `abs`, whose scanned entry is `entry`,
   * observed at `observedAt`. Reads the file only when no trusted hash exists.
   * A hash is remembered only if the file did not change while being read and
   * its key is {@link isSettled}.
   */
  async md5(path: string, abs: string, entry: Entry, observedAt: number): Promise<string> {
    const key = statKey(entry);
    const known = this.#known.get(path);
    if (known?.key === key) return known.md5;
    const { md5, bytes } = await md5File(abs, this.#buffer);
    this.#hashedBytes += bytes;
    const after = entryFromInfo(Deno.lstatSync(abs));
    if (statKey(after) === key && isSettled(entry, observedAt)) {
      this.#known.set(path, { key, md5 });
    } else {
      this.#known.delete(path);
    }
    return md5;
  }

  /** Forget every path not in `keep`. */
  retain(keep: ReadonlyMap<string, unknown>): void {
    for (const path of this.#known.keys()) {
      if (!keep.has(path)) this.#known.delete(path);
    }
  }
}

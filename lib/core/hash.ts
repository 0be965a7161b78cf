/**
 * MD5 of a file, streamed through one reused 1 MiB buffer (never read whole).
 * Small files are read with sync calls (far cheaper in Deno); big ones
 * asynchronously, so the program stays responsive while they are read.
 *
 * `node:crypto` is loaded on first use: an unchanged cycle hashes nothing
 * and so does not pay for loading it.
 *
 * @module
 */
import { BIG_FILE } from "./replica.ts";

type Crypto = typeof import("node:crypto");
let nodeCrypto: Crypto | undefined;

/**
 * Reads files and returns their MD5, counting the bytes it read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Hasher } from "./hash.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/a`, "hello");
 * const hasher = new Hasher();
 * assert.equal(await hasher.md5(`${dir}/a`, 5), "5d41402abc4b2a76b9719d911017c592");
 * assert.equal(hasher.hashedBytes, 5);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class Hasher {
  readonly #buffer = new Uint8Array(1 << 20);
  #hashedBytes = 0;

  /** Bytes of file content read so far. */
  get hashedBytes(): number {
    return this.#hashedBytes;
  }

  /**
   * Hex MD5 of the file at `path` whose size was `size` when scanned. A big
   * file is read asynchronously and stops when `signal` aborts (throwing its
   * reason).
   *
   * @param path the file's path.
   * @param size the file's size when it was scanned (a big one is read asynchronously).
   * @param signal stops the reading of a big file early.
   * @param limit read at most this many bytes (the MD5 of the file's first bytes).
   * @returns the file's MD5, in lowercase hex.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Hasher } from "./hash.ts";
   * const file = Deno.makeTempFileSync();
   * Deno.writeTextFileSync(file, "abc");
   * assert.equal(await new Hasher().md5(file, 3), "900150983cd24fb0d6963f7d28e17f72");
   * Deno.removeSync(file);
   * ```
   */
  async md5(
    path: string,
    size: number,
    signal?: AbortSignal,
    limit = Infinity,
  ): Promise<string> {
    nodeCrypto ??= await import("node:crypto");
    const hash = nodeCrypto.createHash("md5");
    const buffer = this.#buffer;
    let left = limit;
    const take = (n: number) => {
      const used = Math.min(n, left);
      hash.update(buffer.subarray(0, used));
      this.#hashedBytes += used;
      left -= used;
    };
    if (size < BIG_FILE) {
      using file = Deno.openSync(path, { read: true });
      for (let n = file.readSync(buffer); n !== null && left > 0; n = file.readSync(buffer)) {
        take(n);
      }
    } else {
      using file = await Deno.open(path, { read: true });
      for (let n = await file.read(buffer); n !== null && left > 0; n = await file.read(buffer)) {
        signal?.throwIfAborted();
        take(n);
      }
    }
    return hash.digest("hex");
  }
}

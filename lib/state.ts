/**
 * What the program remembers between cycles, and between runs, about file
 * contents: for each file pair last found identical, the stat keys of both
 * sides at that moment and their MD5. While both keys are unchanged, the pair
 * is trusted without reading a byte; when one side changed, the other side's
 * MD5 is known without reading it.
 *
 * The index is kept in the replica root as `.mirror.index` (written under a
 * temp name and renamed), the only place the program may write besides the
 * log file. A missing, damaged or foreign index just means hashing once more.
 *
 * Memory matters at a million files, so a pair is not an object: each path
 * maps to a slot in two flat arrays (eight numbers of keys, sixteen bytes of
 * MD5), ~150 bytes a pair with its path. The file is the same arrays, written
 * as they are.
 *
 * @module
 */
import type { Disk } from "./disk.ts";
import { type Entry, INDEX_NAME, isSettled, joinPath, tempName } from "./entry.ts";

/**
 * File layout: MAGIC (16 bytes), the pair count (uint32), 4 bytes of padding,
 * then count × 8 float64 keys (source size, mtime, ctime, inode; the same for
 * the replica, NaN when only the source was read), count × 16 bytes of MD5,
 * and the paths in UTF-8, each ended by a NUL (which no path contains).
 * Numbers are in the machine's byte order; the magic's last line tells which.
 */
const MAGIC = new TextEncoder().encode(
  new Uint8Array(new Float64Array([1]).buffer)[7] === 0x3f
    ? "mirror-index-3L\n"
    : "mirror-index-3B\n",
);
const HEADER = MAGIC.length + 8;
const KEYS = 8;
const MD5_BYTES = 16;

/** Which side's stat key {@link PairIndex.knows} checks. */
export type Side = "source" | "replica";

/** Path -> stat keys of both sides and their MD5, persisted in the replica root. */
export class PairIndex {
  /** Path -> slot in {@link #keys} and {@link #md5s}. */
  readonly #slots = new Map<string, number>();
  #keys = new Float64Array(0);
  #md5s = new Uint8Array(0);
  /** Slots handed out so far; forgotten ones wait in {@link #free}. */
  #used = 0;
  readonly #free: number[] = [];
  #dirty = false;

  /** The index stored in `replicaRoot`, or an empty one. */
  static load(replicaRoot: string): PairIndex {
    const index = new PairIndex();
    try {
      index.#read(Deno.readFileSync(joinPath(replicaRoot, INDEX_NAME)));
    } catch {
      // Missing, damaged or from another version: start empty; pairs are hashed once.
      return new PairIndex();
    }
    return index;
  }

  #read(bytes: Uint8Array): void {
    if (!MAGIC.every((byte, i) => bytes[i] === byte)) throw new Error("not an index");
    const count = new DataView(bytes.buffer, bytes.byteOffset).getUint32(MAGIC.length, true);
    const md5At = HEADER + count * KEYS * 8, pathsAt = md5At + count * MD5_BYTES;
    if (bytes.length < pathsAt) throw new Error("truncated");
    const paths = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(pathsAt))
      .split("\0");
    if (paths.length !== count + 1 || paths[count] !== "") throw new Error("damaged");
    this.#keys = new Float64Array(bytes.slice(HEADER, md5At).buffer);
    this.#md5s = bytes.slice(md5At, pathsAt);
    for (let slot = 0; slot < count; slot++) this.#slots.set(paths[slot]!, slot);
    this.#used = count;
  }

  get size(): number {
    return this.#slots.size;
  }

  /** Whether `entry` still has the stat key recorded for `side` of the pair at `path`. */
  knows(path: string, side: Side, entry: Entry): boolean {
    const slot = this.#slots.get(path);
    if (slot === undefined) return false;
    const at = slot * KEYS + (side === "source" ? 0 : 4), keys = this.#keys;
    return keys[at] === entry.size && keys[at + 1] === entry.mtimeMs &&
      keys[at + 2] === entry.ctimeMs && keys[at + 3] === entry.ino;
  }

  /** The MD5 (hex) recorded at `path`, if any. */
  md5(path: string): string | undefined {
    const slot = this.#slots.get(path);
    if (slot === undefined) return undefined;
    const codes = HEX_CODES;
    for (let i = 0; i < MD5_BYTES; i++) {
      const byte = this.#md5s[slot * MD5_BYTES + i]!;
      codes[2 * i] = HEX_DIGITS[byte >> 4]!;
      codes[2 * i + 1] = HEX_DIGITS[byte & 15]!;
    }
    return String.fromCharCode(...codes);
  }

  /**
   * Record that `source` and `replica` hold the same bytes with MD5 `md5`.
   * Kept only when both keys are settled at `observedAt` (see `isSettled`).
   */
  record(path: string, source: Entry, replica: Entry, md5: string, observedAt: number): void {
    if (!isSettled(source, observedAt) || !isSettled(replica, observedAt)) {
      this.forget(path);
    } else if (
      !this.knows(path, "source", source) || !this.knows(path, "replica", replica) ||
      this.md5(path) !== md5
    ) {
      this.#set(path, source, replica, md5);
    }
  }

  /**
   * Record the MD5 of a source file read on its own (for the tree digest), so
   * that comparing it later reads only the replica side. Kept only when the
   * key is settled at `observedAt`, and never over a full pair for that key.
   */
  recordSource(path: string, source: Entry, md5: string, observedAt: number): void {
    if (!isSettled(source, observedAt) || this.knows(path, "source", source)) return;
    this.#set(path, source, undefined, md5);
  }

  #set(path: string, source: Entry, replica: Entry | undefined, md5: string): void {
    let slot = this.#slots.get(path);
    if (slot === undefined) {
      slot = this.#free.pop() ?? this.#grow();
      this.#slots.set(path, slot);
    }
    const at = slot * KEYS;
    this.#keys.set([source.size, source.mtimeMs, source.ctimeMs, source.ino], at);
    if (replica === undefined) this.#keys.fill(NaN, at + 4, at + 8);
    else this.#keys.set([replica.size, replica.mtimeMs, replica.ctimeMs, replica.ino], at + 4);
    for (let i = 0; i < MD5_BYTES; i++) {
      this.#md5s[slot * MD5_BYTES + i] = parseInt(md5.slice(2 * i, 2 * i + 2), 16);
    }
    this.#dirty = true;
  }

  /** A new slot at the end, doubling the arrays when full. */
  #grow(): number {
    if (this.#used * KEYS === this.#keys.length) {
      const capacity = Math.max(1024, 2 * this.#used);
      const keys = new Float64Array(capacity * KEYS), md5s = new Uint8Array(capacity * MD5_BYTES);
      keys.set(this.#keys);
      md5s.set(this.#md5s);
      this.#keys = keys;
      this.#md5s = md5s;
    }
    return this.#used++;
  }

  /** Drop what is known about `path`. */
  forget(path: string): void {
    const slot = this.#slots.get(path);
    if (slot === undefined) return;
    this.#slots.delete(path);
    this.#free.push(slot);
    this.#dirty = true;
  }

  /** Drop every path for which `keep` is false. */
  retain(keep: (path: string) => boolean): void {
    for (const path of this.#slots.keys()) if (!keep(path)) this.forget(path);
  }

  /** Write the index into `replicaRoot` if it changed since it was loaded or saved. */
  save(replicaRoot: string, disk: Disk): void {
    if (!this.#dirty) return;
    const temp = joinPath(replicaRoot, tempName());
    try {
      disk.writeFile(temp, this.#bytes());
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

  /** The file's bytes: live slots only, in path order of the map. */
  #bytes(): Uint8Array {
    const count = this.#slots.size;
    const paths = new TextEncoder().encode([...this.#slots.keys(), ""].join("\0"));
    const md5At = HEADER + count * KEYS * 8, pathsAt = md5At + count * MD5_BYTES;
    const bytes = new Uint8Array(pathsAt + paths.length);
    bytes.set(MAGIC);
    new DataView(bytes.buffer).setUint32(MAGIC.length, count, true);
    const keys = new Float64Array(bytes.buffer, HEADER, count * KEYS);
    let i = 0;
    for (const slot of this.#slots.values()) {
      keys.set(this.#keys.subarray(slot * KEYS, (slot + 1) * KEYS), i * KEYS);
      bytes.set(
        this.#md5s.subarray(slot * MD5_BYTES, (slot + 1) * MD5_BYTES),
        md5At + i * MD5_BYTES,
      );
      i++;
    }
    bytes.set(paths, pathsAt);
    return bytes;
  }
}

const HEX_DIGITS = Array.from("0123456789abcdef", (digit) => digit.charCodeAt(0));
const HEX_CODES = new Array<number>(2 * MD5_BYTES).fill(0);

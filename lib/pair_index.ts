/**
 * What the program knows about file contents: for each file pair last found
 * identical, the stat keys of both sides at that moment and, when it was
 * read, their MD5. While both keys are unchanged, the pair is trusted without
 * reading a byte; when one side changed, the other side's MD5 (if known) is
 * not read again.
 *
 * A pair is known in three ways: compared by MD5 ({@link PairIndex.record}),
 * written by the mirror itself ({@link PairIndex.recordCopy}: the copy came
 * from the source as it was scanned, so no byte needs reading), or only the
 * source side read ({@link PairIndex.recordSource}).
 *
 * Memory matters at a million files, so a pair is not an object: each path
 * maps to a slot in flat arrays (eight numbers of keys, sixteen bytes of MD5,
 * one byte of flags), ~150 bytes a pair with its path. Its bytes
 * ({@link PairIndex.toBytes}) are the same arrays, written as they are, and go
 * into the state file (`state.ts`).
 *
 * @module
 */
import { type Entry, isSettled, keyOf, type StatKey } from "./entry.ts";

/** Byte layout: the pair count (uint32), 4 bytes of padding, count × 8 float64
 * keys (source size, mtime, ctime, inode; the same for the replica, NaN when
 * only the source is known), count × 16 bytes of MD5, count flag bytes, and
 * the paths in UTF-8, each ended by a NUL (which no path contains). Numbers
 * are in the machine's byte order (the state records which). */
const HEADER = 8;
const KEYS = 8;
const MD5_BYTES = 16;
/** Flag: the MD5 of the pair is known. */
const MD5_KNOWN = 1;

/** Which side's stat key {@link PairIndex.knows} checks. */
export type Side = "source" | "replica";

/**
 * Path -> stat keys of both sides and their MD5.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PairIndex } from "./pair_index.ts";
 * const file = { kind: "file" as const, size: 3, mtimeMs: 1, ctimeMs: 0, ino: 7, mode: 0o644 };
 * const index = new PairIndex();
 * index.record("a.txt", file, file, "900150983cd24fb0d6963f7d28e17f72", Date.now());
 * const copy = PairIndex.fromBytes(index.toBytes());
 * assert.ok(copy.knows("a.txt", "replica", file));
 * assert.equal(copy.md5("a.txt"), "900150983cd24fb0d6963f7d28e17f72");
 * ```
 */
export class PairIndex {
  /** Path -> slot in the arrays. */
  readonly #slots = new Map<string, number>();
  #keys = new Float64Array(0);
  #md5s = new Uint8Array(0);
  #flags = new Uint8Array(0);
  /** Slots handed out so far; forgotten ones wait in {@link #free}. */
  #used = 0;
  readonly #free: number[] = [];
  #dirty = false;

  /**
   * The index `bytes` hold (from {@link toBytes}).
   *
   * @param bytes the bytes {@link toBytes} returned.
   * @returns a new index holding the same pairs, not {@link dirty}.
   * @throws {Error} when the bytes are truncated or damaged.
   */
  static fromBytes(bytes: Uint8Array): PairIndex {
    const index = new PairIndex();
    if (bytes.length < HEADER) throw new Error("truncated index");
    const count = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
    const md5At = HEADER + count * KEYS * 8, flagsAt = md5At + count * MD5_BYTES;
    const pathsAt = flagsAt + count;
    if (bytes.length < pathsAt) throw new Error("truncated index");
    const paths = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(pathsAt))
      .split("\0");
    if (paths.length !== count + 1 || paths[count] !== "") throw new Error("damaged index");
    index.#keys = new Float64Array(bytes.slice(HEADER, md5At).buffer);
    index.#md5s = bytes.slice(md5At, flagsAt);
    index.#flags = bytes.slice(flagsAt, pathsAt);
    for (let slot = 0; slot < count; slot++) index.#slots.set(paths[slot]!, slot);
    if (index.#slots.size !== count) throw new Error("damaged index (a path twice)");
    index.#used = count;
    return index;
  }

  /** Pairs known. */
  get size(): number {
    return this.#slots.size;
  }

  /** Whether anything changed since the index was made, loaded or {@link saved}. */
  get dirty(): boolean {
    return this.#dirty;
  }

  /** The current content has been saved. */
  saved(): void {
    this.#dirty = false;
  }

  /** The content must be saved again (a save failed). */
  touched(): void {
    this.#dirty = true;
  }

  /**
   * Whether `entry` still has the stat key recorded for `side` of the pair at `path`.
   *
   * @param path the pair's path relative to the roots.
   * @param side which side's key to check.
   * @param entry that side's entry as scanned now.
   * @returns true when the pair is known and that side's key is unchanged.
   */
  knows(path: string, side: Side, entry: Entry): boolean {
    const slot = this.#slots.get(path);
    if (slot === undefined) return false;
    const at = slot * KEYS + (side === "source" ? 0 : 4), keys = this.#keys;
    return keys[at] === entry.size && keys[at + 1] === entry.mtimeMs &&
      keys[at + 2] === entry.ctimeMs && keys[at + 3] === entry.ino;
  }

  /**
   * The MD5 recorded for the pair at `path`.
   *
   * @param path the pair's path relative to the roots.
   * @returns the MD5 in lowercase hex, or undefined when it is not known.
   */
  md5(path: string): string | undefined {
    const slot = this.#slots.get(path);
    if (slot === undefined || (this.#flags[slot]! & MD5_KNOWN) === 0) return undefined;
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
   *
   * @param path the pair's path relative to the roots.
   * @param source the source file as scanned.
   * @param replica the replica file as scanned.
   * @param md5 the MD5 (hex) both hold.
   * @param observedAt when the scan started (epoch milliseconds).
   */
  record(path: string, source: Entry, replica: Entry, md5: string, observedAt: number): void {
    if (!isSettled(source, observedAt) || !isSettled(replica, observedAt)) {
      this.forget(path);
    } else if (
      !this.knows(path, "source", source) || !this.knows(path, "replica", replica) ||
      this.md5(path) !== md5
    ) {
      this.#set(path, keyOf(source), keyOf(replica), md5);
    }
  }

  /**
   * Record that the mirror copied `source` (scanned at `observedAt`, and
   * unchanged when the copy ended) into a replica file whose key is now
   * `replica`: the pair is identical, its MD5 unknown. Kept only when the
   * source key is settled at `observedAt`; the replica key is the mirror's
   * own write and is trusted at once (the gap this leaves is documented in
   * the README).
   *
   * @param path the pair's path relative to the roots.
   * @param source the source file as scanned.
   * @param replica the replica file's stat key after the copy.
   * @param observedAt when the scan started (epoch milliseconds).
   */
  recordCopy(path: string, source: Entry, replica: StatKey, observedAt: number): void {
    if (!isSettled(source, observedAt)) return this.forget(path);
    const md5 = this.knows(path, "source", source) ? this.md5(path) : undefined;
    this.#set(path, keyOf(source), replica, md5);
  }

  /**
   * Someone else wrote the replica file at `path`: its key is no longer
   * trusted, whatever it is (the source side's MD5, if known, still is).
   *
   * @param path the pair's path relative to the roots.
   */
  distrustReplica(path: string): void {
    const slot = this.#slots.get(path);
    if (slot === undefined) return;
    if ((this.#flags[slot]! & MD5_KNOWN) === 0) return this.forget(path);
    this.#keys.fill(NaN, slot * KEYS + 4, slot * KEYS + 8);
    this.#dirty = true;
  }

  /**
   * The mirror changed the attributes of the replica file at `path` (a new
   * ctime, maybe a new mtime): if the pair is known, `replica` is its key now.
   *
   * @param path the pair's path relative to the roots.
   * @param replica the replica file's stat key after the change.
   */
  updateReplica(path: string, replica: StatKey): void {
    const slot = this.#slots.get(path);
    if (slot === undefined || Number.isNaN(this.#keys[slot * KEYS + 4]!)) return;
    this.#keys.set(replica, slot * KEYS + 4);
    this.#dirty = true;
  }

  /**
   * Record the MD5 of a source file read on its own, so that comparing it
   * later reads only the replica side. Kept only when the key is settled at
   * `observedAt`. Where the pair is already known for this key, only its
   * missing MD5 is filled in.
   *
   * @param path the file's path relative to the roots.
   * @param source the source file as scanned.
   * @param md5 the file's MD5 (hex).
   * @param observedAt when the scan started (epoch milliseconds).
   */
  recordSource(path: string, source: Entry, md5: string, observedAt: number): void {
    if (!isSettled(source, observedAt)) return;
    if (!this.knows(path, "source", source)) {
      this.#set(path, keyOf(source), undefined, md5);
    } else if (this.md5(path) === undefined) {
      const slot = this.#slots.get(path)!;
      this.#setMd5(slot, md5);
      this.#dirty = true;
    }
  }

  #set(path: string, source: StatKey, replica: StatKey | undefined, md5: string | undefined) {
    let slot = this.#slots.get(path);
    if (slot === undefined) {
      slot = this.#free.pop() ?? this.#grow();
      this.#slots.set(path, slot);
    }
    const at = slot * KEYS;
    this.#keys.set(source, at);
    if (replica === undefined) this.#keys.fill(NaN, at + 4, at + 8);
    else this.#keys.set(replica, at + 4);
    this.#flags[slot] = 0;
    if (md5 !== undefined) this.#setMd5(slot, md5);
    this.#dirty = true;
  }

  #setMd5(slot: number, md5: string): void {
    for (let i = 0; i < MD5_BYTES; i++) {
      this.#md5s[slot * MD5_BYTES + i] = parseInt(md5.slice(2 * i, 2 * i + 2), 16);
    }
    this.#flags[slot]! |= MD5_KNOWN;
  }

  /** A new slot at the end, doubling the arrays when full. */
  #grow(): number {
    if (this.#used === this.#flags.length) {
      const capacity = Math.max(1024, 2 * this.#used);
      const keys = new Float64Array(capacity * KEYS), md5s = new Uint8Array(capacity * MD5_BYTES);
      const flags = new Uint8Array(capacity);
      keys.set(this.#keys);
      md5s.set(this.#md5s);
      flags.set(this.#flags);
      this.#keys = keys;
      this.#md5s = md5s;
      this.#flags = flags;
    }
    return this.#used++;
  }

  /**
   * Drop what is known about `path`.
   *
   * @param path the pair's path relative to the roots.
   */
  forget(path: string): void {
    const slot = this.#slots.get(path);
    if (slot === undefined) return;
    this.#slots.delete(path);
    this.#free.push(slot);
    this.#dirty = true;
  }

  /**
   * Drop every path for which `keep` is false.
   *
   * @param keep says whether to keep the pair at a path.
   */
  retain(keep: (path: string) => boolean): void {
    for (const path of this.#slots.keys()) if (!keep(path)) this.forget(path);
  }

  /**
   * The index as bytes (live slots only), for the state file; {@link fromBytes}
   * reads them back.
   *
   * @returns the known pairs, in the byte layout described at the top of `pair_index.ts`.
   */
  toBytes(): Uint8Array {
    const count = this.#slots.size;
    const paths = new TextEncoder().encode([...this.#slots.keys(), ""].join("\0"));
    const md5At = HEADER + count * KEYS * 8, flagsAt = md5At + count * MD5_BYTES;
    const pathsAt = flagsAt + count;
    const bytes = new Uint8Array(pathsAt + paths.length);
    new DataView(bytes.buffer).setUint32(0, count, true);
    const keys = new Float64Array(bytes.buffer, HEADER, count * KEYS);
    let i = 0;
    for (const slot of this.#slots.values()) {
      keys.set(this.#keys.subarray(slot * KEYS, (slot + 1) * KEYS), i * KEYS);
      bytes.set(
        this.#md5s.subarray(slot * MD5_BYTES, (slot + 1) * MD5_BYTES),
        md5At + i * MD5_BYTES,
      );
      bytes[flagsAt + i] = this.#flags[slot]!;
      i++;
    }
    bytes.set(paths, pathsAt);
    return bytes;
  }
}

const HEX_DIGITS = Array.from("0123456789abcdef", (digit) => digit.charCodeAt(0));
const HEX_CODES = new Array<number>(2 * MD5_BYTES).fill(0);

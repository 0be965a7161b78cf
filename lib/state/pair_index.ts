/**
 * What the program knows about file contents: for each file pair last found
 * identical, a print of the stat keys of both sides at that moment and, when
 * it was read, their MD5. While both keys are unchanged, the pair is trusted
 * without reading a byte; when one side changed, the other side's MD5 (if
 * known) is not read again.
 *
 * A pair is known in three ways: compared by MD5 ({@link PairIndex.record}),
 * written by the mirror itself ({@link PairIndex.recordCopy}: the copy came
 * from the source as it was scanned, so no byte needs reading), or only the
 * source side read ({@link PairIndex.recordSource}).
 *
 * Memory matters at a million files, so the index is kept per folder, in
 * flat arrays: a folder's names in one string (sorted, so a name is found by
 * binary search and a walk meets them in order), two 53-bit prints of stat
 * keys, sixteen bytes of MD5 and one byte of flags a pair, ~45 bytes with a
 * short name. A stat key's print ({@link keyPrint}) stands for its four
 * numbers (size, mtime, ctime, inode): a changed key with the same print is
 * one chance in 2^53. Each folder also keeps the print and MD5 of its tree
 * digest (`digest.ts`), so an unchanged folder's digest is not computed
 * again. It also keeps each pair's source inode, and each folder's, so that
 * a file or folder found at a new path can be recognised as moved
 * ({@link PairIndex.pathsOfInode}, {@link PairIndex.folderOfInode}). Its bytes
 * ({@link PairIndex.toBytes}) are the same arrays, folder after folder, and go
 * into the state file (`state.ts`).
 *
 * @module
 */
import { type Entry, isSettled, type StatKey } from "../core/entry.ts";
import { compareNames, parentOf, rank } from "../core/paths.ts";

const MD5_BYTES = 16;
/** Flag: the MD5 of the pair is known. */
const MD5_KNOWN = 1;
/** Flag: the slot holds no pair (forgotten). */
const GONE = 2;
/** A print that no key has: the side is not known. */
const UNKNOWN = -1;

/** Which side's stat key {@link PairIndex.knows} checks. */
export type Side = "source" | "replica";

const scratch = new Float64Array(4);
const words = new Uint32Array(scratch.buffer);

/**
 * A 53-bit print of a stat key: equal keys give equal prints; different ones,
 * different prints but for one chance in 2^53.
 *
 * @param key the key's four numbers: size, mtime, ctime, inode.
 * @returns a whole number in [0, 2^53).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyPrint } from "./pair_index.ts";
 * assert.equal(keyPrint([3, 1000, 2000, 7]), keyPrint([3, 1000, 2000, 7]));
 * assert.notEqual(keyPrint([3, 1000, 2000, 7]), keyPrint([3, 1001, 2000, 7]));
 * ```
 */
export function keyPrint(key: StatKey): number {
  scratch[0] = key[0];
  scratch[1] = key[1];
  scratch[2] = key[2];
  scratch[3] = key[3];
  // Two lanes of murmur3's mixing over the key's 32 bytes, 53 bits kept.
  let a = 0x9e3779b9, b = 0x7f4a7c15;
  for (let i = 0; i < 8; i++) {
    const word = words[i]!;
    let k = Math.imul(word, 0xcc9e2d51);
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593);
    a ^= k;
    a = (Math.imul((a << 13) | (a >>> 19), 5) + 0xe6546b64) | 0;
    k = Math.imul(word, 0x85ebca6b);
    k = Math.imul((k << 17) | (k >>> 15), 0xc2b2ae35);
    b ^= k;
    b = (Math.imul((b << 15) | (b >>> 17), 5) + 0x38495ab5) | 0;
  }
  a = fmix(a ^ 32);
  b = fmix(b ^ 32);
  a = (a + b) | 0;
  b = (b + a) | 0;
  return (a >>> 0) * 0x200000 + (b >>> 11);
}

function fmix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/**
 * {@link keyPrint} of an entry's stat key (size, mtime, ctime, inode), with no
 * array made for it.
 *
 * @param entry the entry.
 * @returns its key's print.
 */
export function entryPrint(entry: Entry): number {
  scratch[0] = entry.size;
  scratch[1] = entry.mtimeMs;
  scratch[2] = entry.ctimeMs;
  scratch[3] = entry.ino;
  return keyPrint(scratch as unknown as StatKey);
}

/** Pairs added outside the folders' arrays before they are all compacted. */
const MAX_EXTRAS = 4096;

/** A pair added to a folder since its arrays were last built. */
interface Extra {
  source: number;
  replica: number;
  /** The source file's inode (NaN: not known). */
  ino: number;
  md5?: Uint8Array;
}

/** One folder's pairs: sorted arrays, plus pairs added since (see {@link Folder.compact}). */
class Folder {
  /** The names, sorted, each followed by `\0`. */
  names = "";
  /** Where each name starts in {@link names}. */
  starts: Uint32Array = new Uint32Array(0);
  /** Per slot: the source key's print, the replica key's print ({@link UNKNOWN}: not known). */
  prints: Float64Array = new Float64Array(0);
  /** Per slot: the source file's inode (NaN: not known). */
  inos: Float64Array = new Float64Array(0);
  md5s: Uint8Array = new Uint8Array(0);
  flags: Uint8Array = new Uint8Array(0);
  /** Pairs of names not in the arrays. */
  extra: Map<string, Extra> | undefined;
  /** Live pairs (slots not gone, and extras). */
  live = 0;
  /** The last walk that visited it (see {@link PairIndex.sweep}). */
  visited = 0;
  /** How many times its arrays were built anew (a slot held elsewhere may be stale). */
  generation = 0;
  /** The print and MD5 of the folder's tree digest, when known. */
  digestPrint = UNKNOWN;
  digest: Uint8Array | undefined;
  /** The source folder's inode, as the last walk found it (NaN: not known). */
  ino = NaN;

  get slots(): number {
    return this.starts.length;
  }

  /** The slot {@link slotOf} found last (a walk asks for the names in their order). */
  #last = -1;

  /** The slot of `name` in the arrays (gone or not), or -1. */
  slotOf(name: string): number {
    const names = this.names, starts = this.starts;
    // The walk meets a folder's names in the arrays' order, each asked for once a side:
    // the last slot found, then the one after it, are tried first (not a search).
    const last = this.#last;
    if (last >= 0 && last < starts.length && compareAt(names, starts[last]!, name) === 0) {
      return last;
    }
    const next = last + 1;
    if (next < starts.length && compareAt(names, starts[next]!, name) === 0) {
      this.#last = next;
      return next;
    }
    let low = 0, high = starts.length - 1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      const order = compareAt(names, starts[mid]!, name);
      if (order === 0) return this.#last = mid;
      if (order < 0) low = mid + 1;
      else high = mid - 1;
    }
    return -1;
  }

  nameAt(slot: number): string {
    const start = this.starts[slot]!;
    return this.names.slice(start, this.names.indexOf("\0", start));
  }

  /** Build the arrays anew from the live pairs and the extras, sorted. */
  compact(): void {
    const pairs: {
      name: string;
      source: number;
      replica: number;
      ino: number;
      md5?: Uint8Array;
    }[] = [];
    for (let slot = 0; slot < this.slots; slot++) {
      if (this.flags[slot]! & GONE) continue;
      pairs.push({
        name: this.nameAt(slot),
        source: this.prints[2 * slot]!,
        replica: this.prints[2 * slot + 1]!,
        ino: this.inos[slot] ?? NaN,
        ...(this.flags[slot]! & MD5_KNOWN
          ? { md5: this.md5s.subarray(slot * MD5_BYTES, (slot + 1) * MD5_BYTES) }
          : {}),
      });
    }
    for (const [name, extra] of this.extra ?? []) pairs.push({ name, ...extra });
    pairs.sort((a, b) => compareNames(a.name, b.name));
    const count = pairs.length;
    const prints = new Float64Array(2 * count), md5s = new Uint8Array(count * MD5_BYTES);
    const flags = new Uint8Array(count), starts = new Uint32Array(count);
    const inos = new Float64Array(count);
    let at = 0;
    pairs.forEach((pair, slot) => {
      starts[slot] = at;
      at += pair.name.length + 1;
      prints[2 * slot] = pair.source;
      prints[2 * slot + 1] = pair.replica;
      inos[slot] = pair.ino;
      if (pair.md5) {
        md5s.set(pair.md5, slot * MD5_BYTES);
        flags[slot] = MD5_KNOWN;
      }
    });
    this.names = pairs.map((pair) => `${pair.name}\0`).join("");
    Object.assign(this, { starts, prints, inos, md5s, flags, extra: undefined, live: count });
    this.generation++;
  }

  /** The names of its live pairs whose source inode is `ino`. */
  namesOfInode(ino: number): string[] {
    const names: string[] = [];
    for (let slot = 0; slot < this.slots; slot++) {
      if (this.inos[slot] === ino && !(this.flags[slot]! & GONE)) names.push(this.nameAt(slot));
    }
    for (const [name, extra] of this.extra ?? []) if (extra.ino === ino) names.push(name);
    return names;
  }
}

/** Where the pairs are, in the order of their source inodes. */
interface InodeOrder {
  readonly inos: Float64Array;
  readonly folders: readonly Folder[];
  readonly dirs: readonly string[];
  readonly slots: Int32Array;
  /** Each folder's {@link Folder.generation} when its slot was taken. */
  readonly generations: Uint32Array;
  /** Pairs set since it was made: source inode -> their paths (checked when asked). */
  readonly since: Map<number, string[]>;
  /** How many paths {@link since} holds. */
  added: number;
}

/** Compare the name starting at `start` in `names` (ended by `\0`) with `name`, as `compareNames`. */
function compareAt(names: string, start: number, name: string): number {
  for (let i = 0;; i++) {
    const x = names.charCodeAt(start + i);
    if (x === 0) return i === name.length ? 0 : -1;
    if (i === name.length) return 1;
    const y = name.charCodeAt(i);
    if (x !== y) return rank(x) - rank(y);
  }
}

/**
 * Path -> stat key prints of both sides and their MD5, folder by folder.
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
  /** Folder path -> its pairs. */
  readonly #folders = new Map<string, Folder>();
  /** Folders with pairs added outside their arrays, and how many were added. */
  readonly #withExtras = new Set<Folder>();
  #extras = 0;
  #dirty = false;
  /** The walk under way (see {@link visit}). */
  #walk = 1;
  /** Pairs a walk found gone from the source, dropped when it ends ({@link settle}). */
  #dropping: [Folder, string][] = [];
  /** Source inodes, sorted, with where each pair is: made when first asked,
   * then kept up to date (pairs set since are listed apart, a pair dropped
   * or changed is checked when asked), made anew when much was set. */
  #byInode: InodeOrder | undefined;

  /**
   * The index `bytes` hold (from {@link toBytes}).
   *
   * @param bytes the bytes {@link toBytes} returned.
   * @param inodes whether they hold inodes (an index saved before they were
   *   kept does not: its pairs and folders then have none). Default: true.
   * @returns a new index holding the same pairs, not {@link dirty}.
   * @throws {Error} when the bytes are truncated or damaged.
   */
  static fromBytes(bytes: Uint8Array, inodes = true): PairIndex {
    // The arrays are views of the bytes: make their start 8-byte aligned.
    if (bytes.byteOffset % 8 !== 0) bytes = bytes.slice();
    const index = new PairIndex();
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const decoder = new TextDecoder("utf-8", { fatal: true });
    let at = 0;
    const take = (length: number) => {
      if (length < 0 || at + length > bytes.length) throw new Error("truncated index");
      const start = at;
      at += length;
      return start;
    };
    const u32 = () => view.getUint32(take(4), true);
    const align = () => take((8 - (at % 8)) % 8);
    const folders = u32();
    for (let f = 0; f < folders; f++) {
      const pathLength = u32();
      const path = decoder.decode(bytes.subarray(take(pathLength), at));
      const count = u32(), namesLength = u32();
      const names = decoder.decode(bytes.subarray(take(namesLength), at));
      align();
      const printsAt = take(count * 16);
      const inosAt = inodes ? take(count * 8) : -1;
      const md5sAt = take(count * MD5_BYTES);
      const flagsAt = take(count);
      align();
      const digestPrint = view.getFloat64(take(8), true);
      const digest = bytes.slice(take(MD5_BYTES), at);
      const folderIno = inodes ? view.getFloat64(take(8), true) : NaN;
      const folder = new Folder();
      folder.names = names;
      folder.starts = new Uint32Array(count);
      let start = 0;
      for (let slot = 0; slot < count; slot++) {
        const end = names.indexOf("\0", start);
        if (end < 0) throw new Error("damaged index (names)");
        folder.starts[slot] = start;
        start = end + 1;
      }
      if (start !== names.length) throw new Error("damaged index (names)");
      folder.prints = new Float64Array(bytes.buffer, bytes.byteOffset + printsAt, 2 * count);
      folder.inos = inodes
        ? new Float64Array(bytes.buffer, bytes.byteOffset + inosAt, count)
        : new Float64Array(count).fill(NaN);
      folder.ino = folderIno;
      folder.md5s = bytes.subarray(md5sAt, md5sAt + count * MD5_BYTES);
      folder.flags = bytes.subarray(flagsAt, flagsAt + count);
      if (folder.flags.some((flag) => (flag & GONE) !== 0)) {
        throw new Error("damaged index (flags)");
      }
      folder.live = count;
      if (!Number.isNaN(digestPrint) && digestPrint !== UNKNOWN) {
        folder.digestPrint = digestPrint;
        folder.digest = digest;
      }
      if (index.#folders.has(path)) throw new Error("damaged index (a folder twice)");
      index.#folders.set(path, folder);
    }
    if (at !== bytes.length) throw new Error("damaged index (trailing bytes)");
    return index;
  }

  /**
   * The index that bytes of the first format hold (one array of full stat
   * keys for all paths, in the machine's byte order), converted: what a
   * state file written by version 0.1 knew is not lost.
   *
   * @param bytes the bytes of a format-1 state.
   * @returns a new index holding the same pairs, {@link dirty}.
   * @throws {Error} when the bytes are truncated or damaged.
   */
  static fromFirstFormat(bytes: Uint8Array): PairIndex {
    const index = new PairIndex();
    if (bytes.length < 8) throw new Error("truncated index");
    const count = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
    const md5At = 8 + count * 64, flagsAt = md5At + count * MD5_BYTES;
    const pathsAt = flagsAt + count;
    if (bytes.length < pathsAt) throw new Error("truncated index");
    const paths = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(pathsAt))
      .split("\0");
    if (paths.length !== count + 1 || paths[count] !== "") throw new Error("damaged index");
    const keys = new Float64Array(bytes.slice(8, md5At).buffer);
    for (let slot = 0; slot < count; slot++) {
      const key = (at: number) => [keys[at]!, keys[at + 1]!, keys[at + 2]!, keys[at + 3]!] as const;
      const replica = Number.isNaN(keys[slot * 8 + 4]!) ? UNKNOWN : keyPrint(key(slot * 8 + 4));
      const known = (bytes[flagsAt + slot]! & MD5_KNOWN) !== 0;
      const md5 = known
        ? bytes.slice(md5At + slot * MD5_BYTES, md5At + (slot + 1) * MD5_BYTES)
        : undefined;
      index.#set(paths[slot]!, keyPrint(key(slot * 8)), replica, md5, keys[slot * 8 + 3]!);
    }
    for (const folder of index.#folders.values()) folder.compact();
    return index;
  }

  /** Folders known (a walk visited them, or they hold pairs). */
  get folders(): number {
    return this.#folders.size;
  }

  /** Pairs known. */
  get size(): number {
    let size = 0;
    for (const folder of this.#folders.values()) size += folder.live;
    return size;
  }

  /** Pairs added and not yet compacted into their folder's arrays (each
   * one an object or two); kept few, however many pairs a cycle adds. */
  get loose(): number {
    let count = 0;
    for (const folder of this.#folders.values()) count += folder.extra?.size ?? 0;
    return count;
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
    return this.knowsIn(parentOf(path), nameOf(path), side, entry);
  }

  /**
   * {@link knows} for the name `name` in the folder `dir` (a walk has both at hand).
   *
   * @param dir the folder's path (`""`: the roots).
   * @param name the file's name in it.
   * @param side which side's key to check.
   * @param entry that side's entry as scanned now.
   * @returns true when the pair is known and that side's key is unchanged.
   */
  knowsIn(dir: string, name: string, side: Side, entry: Entry): boolean {
    const folder = this.#folders.get(dir);
    if (folder === undefined) return false;
    let print: number;
    const slot = folder.slotOf(name);
    if (slot >= 0) {
      if (folder.flags[slot]! & GONE) return false;
      print = folder.prints[2 * slot + (side === "source" ? 0 : 1)]!;
    } else {
      const extra = folder.extra?.get(name);
      if (extra === undefined) return false;
      print = side === "source" ? extra.source : extra.replica;
    }
    return print !== UNKNOWN && print === entryPrint(entry);
  }

  /**
   * The MD5 recorded for the pair at `path`.
   *
   * @param path the pair's path relative to the roots.
   * @returns the MD5 in lowercase hex, or undefined when it is not known.
   */
  md5(path: string): string | undefined {
    return this.md5In(parentOf(path), nameOf(path));
  }

  /**
   * {@link md5} of the pair `name` in the folder `dir` (a walk has both at hand).
   *
   * @param dir the folder's path relative to the roots (`""`: the roots).
   * @param name the file's name in it.
   * @returns the MD5 in lowercase hex, or undefined when it is not known.
   */
  md5In(dir: string, name: string): string | undefined {
    const folder = this.#folders.get(dir);
    if (folder === undefined) return undefined;
    const slot = folder.slotOf(name);
    if (slot < 0) {
      const md5 = folder.extra?.get(name)?.md5;
      return md5 && hex(md5);
    }
    if ((folder.flags[slot]! & (MD5_KNOWN | GONE)) !== MD5_KNOWN) return undefined;
    return hex(folder.md5s.subarray(slot * MD5_BYTES, (slot + 1) * MD5_BYTES));
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
      this.#set(path, entryPrint(source), entryPrint(replica), fromHex(md5), source.ino);
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
   * @param copied the MD5 (hex) of the bytes copied, when the copy passed
   *   them through the program.
   */
  recordCopy(
    path: string,
    source: Entry,
    replica: StatKey,
    observedAt: number,
    copied?: string,
  ): void {
    if (!isSettled(source, observedAt)) return this.forget(path);
    const md5 = copied ?? (this.knows(path, "source", source) ? this.md5(path) : undefined);
    this.#set(
      path,
      entryPrint(source),
      keyPrint(replica),
      md5 === undefined ? undefined : fromHex(md5),
      source.ino,
    );
  }

  /**
   * Someone else wrote the replica file at `path`: its key is no longer
   * trusted, whatever it is (the source side's MD5, if known, still is).
   *
   * @param path the pair's path relative to the roots.
   */
  distrustReplica(path: string): void {
    const found = this.#find(path);
    if (found === undefined) return;
    if (this.md5(path) === undefined) return this.forget(path);
    if ("extra" in found) found.extra.replica = UNKNOWN;
    else found.folder.prints[2 * found.slot + 1] = UNKNOWN;
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
    const found = this.#find(path);
    if (found === undefined) return;
    if ("extra" in found) {
      if (found.extra.replica === UNKNOWN) return;
      found.extra.replica = keyPrint(replica);
    } else {
      const at = 2 * found.slot + 1;
      if (found.folder.prints[at] === UNKNOWN) return;
      found.folder.prints[at] = keyPrint(replica);
    }
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
      this.#set(path, entryPrint(source), UNKNOWN, fromHex(md5), source.ino);
    } else if (this.md5(path) === undefined) {
      const found = this.#find(path)!;
      if ("extra" in found) found.extra.md5 = fromHex(md5);
      else {
        found.folder.md5s.set(fromHex(md5), found.slot * MD5_BYTES);
        found.folder.flags[found.slot]! |= MD5_KNOWN;
      }
      this.#dirty = true;
    }
  }

  /**
   * Drop what is known about `path`.
   *
   * @param path the pair's path relative to the roots.
   */
  forget(path: string): void {
    const found = this.#find(path);
    if (found === undefined) return;
    const folder = found.folder;
    if ("extra" in found) folder.extra!.delete(nameOf(path));
    else folder.flags[found.slot] = GONE;
    folder.live--;
    this.#dirty = true;
  }

  /**
   * Drop every path for which `keep` is false.
   *
   * @param keep says whether to keep the pair at a path.
   */
  retain(keep: (path: string) => boolean): void {
    for (const path of [...this.#paths()]) if (!keep(path)) this.forget(path);
  }

  /**
   * A walk found the folder `dir` to hold, of all the files known, only
   * `names` (sorted): the pairs of other names in it are dropped when the
   * walk ends ({@link settle}), and the folder is marked visited by this walk
   * (see {@link sweep}).
   *
   * @param dir the folder's path (`""`: the roots).
   * @param names the names of the source files in it, in `compareNames` order.
   * @param ino the source folder's inode (kept, for a move of the folder to be recognised).
   */
  visit(dir: string, names: readonly string[], ino?: number): void {
    // Every source folder: its inode is kept, for a move of it to be recognised.
    const folder = ino !== undefined ? this.#folder(dir) : this.#folders.get(dir);
    if (folder === undefined) return;
    folder.visited = this.#walk;
    if (ino !== undefined && folder.ino !== ino) {
      folder.ino = ino;
      this.#dirty = true;
    }
    if (folder.extra !== undefined) folder.compact();
    let next = 0;
    for (let slot = 0; slot < folder.slots; slot++) {
      // The slot's name against the next source names: one comparison each.
      let order = 1;
      while (
        next < names.length &&
        (order = compareAt(folder.names, folder.starts[slot]!, names[next]!)) > 0
      ) {
        next++;
      }
      const kept = next < names.length && order === 0;
      // Dropped at the end of the walk: until then a move may still find it.
      if (!kept && !(folder.flags[slot]! & GONE)) {
        this.#dropping.push([folder, folder.nameAt(slot)]);
      }
    }
  }

  /**
   * The walk is over: the pairs {@link visit} found the source no longer has
   * are dropped now (a move found during the walk took what it needed of them).
   */
  settle(): void {
    for (const [folder, name] of this.#dropping) {
      const slot = folder.slotOf(name);
      if (slot >= 0 && !(folder.flags[slot]! & GONE)) {
        folder.flags[slot] = GONE;
        folder.live--;
      } else if (slot < 0 && folder.extra?.delete(name)) folder.live--;
      else continue;
      this.#dirty = true;
    }
    this.#dropping = [];
  }

  /**
   * The paths of the pairs whose source file had the inode `ino` when recorded.
   *
   * @param ino an inode number.
   * @returns their paths (several, where an inode was reused), or none.
   */
  pathsOfInode(ino: number): string[] {
    const found = this.#byInode ??= this.#inodeOrder();
    let low = 0, high = found.inos.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (found.inos[mid]! < ino) low = mid + 1;
      else high = mid;
    }
    const paths = new Set<string>();
    const add = (dir: string, name: string) => paths.add((dir === "" ? "" : `${dir}/`) + name);
    for (let at = low; at < found.inos.length && found.inos[at] === ino; at++) {
      const folder = found.folders[at]!, slot = found.slots[at]!, dir = found.dirs[at]!;
      if (this.#folders.get(dir) !== folder) continue; // dropped since
      if (folder.generation !== found.generations[at]) { // its slots moved since
        for (const name of folder.namesOfInode(ino)) add(dir, name);
      } else if (!(folder.flags[slot]! & GONE) && folder.inos[slot] === ino) {
        add(dir, folder.nameAt(slot));
      }
    }
    for (const path of found.since.get(ino) ?? []) {
      const pair = this.#find(path);
      const now = pair === undefined
        ? undefined
        : "extra" in pair
        ? pair.extra.ino
        : pair.folder.inos[pair.slot];
      if (now === ino) paths.add(path);
    }
    return [...paths];
  }

  /**
   * The source inode recorded with the pair at `path`.
   *
   * @param path the pair's path relative to the roots.
   * @returns the inode, or undefined when no pair (or no inode) is known.
   */
  inodeOf(path: string): number | undefined {
    const found = this.#find(path);
    const ino = found === undefined
      ? NaN
      : "extra" in found
      ? found.extra.ino
      : found.folder.inos[found.slot]!;
    return Number.isNaN(ino) ? undefined : ino;
  }

  /**
   * The folder whose source inode was `ino` when a walk last visited it.
   *
   * @param ino an inode number.
   * @returns its path, or undefined when none had it.
   */
  folderOfInode(ino: number): string | undefined {
    for (const [dir, folder] of this.#folders) if (folder.ino === ino) return dir;
    return undefined;
  }

  /**
   * A pair moved, in both trees, from `from` to `to` (where no pair is): what
   * is known of it (its MD5 included) goes with it, with the keys both sides
   * have now (a rename changes the ctime).
   *
   * @param from its old path.
   * @param to its new path.
   * @param source the source file at `to`.
   * @param replica the replica file's key at `to`.
   * @param observedAt when the walk started (a source key too new is not trusted).
   */
  movePair(from: string, to: string, source: Entry, replica: StatKey, observedAt: number): void {
    const md5 = this.md5(from);
    this.forget(from);
    if (!isSettled(source, observedAt)) return;
    const bytes = md5 === undefined ? undefined : fromHex(md5);
    this.#set(to, entryPrint(source), keyPrint(replica), bytes, source.ino);
  }

  /**
   * A folder moved, in both trees, from `from` to `to`: what is known below
   * it (every pair and folder digest) goes with it; the files' keys hold as
   * they were (renaming a folder does not touch what it holds).
   *
   * @param from its old path.
   * @param to its new path.
   */
  moveFolder(from: string, to: string): void {
    for (const [dir, folder] of [...this.#folders]) {
      if (dir !== from && !dir.startsWith(`${from}/`)) continue;
      this.#folders.delete(dir);
      this.#folders.set(to + dir.slice(from.length), folder);
      folder.visited = this.#walk;
    }
    this.#byInode = undefined;
    this.#dirty = true;
  }

  /** Every live pair with a known source inode, in inode order. */
  #inodeOrder(): InodeOrder {
    const refs: { ino: number; folder: Folder; dir: string; slot: number }[] = [];
    for (const [dir, folder] of this.#folders) {
      if (folder.extra !== undefined) folder.compact();
      for (let slot = 0; slot < folder.slots; slot++) {
        const ino = folder.inos[slot]!;
        if (!(folder.flags[slot]! & GONE) && !Number.isNaN(ino)) {
          refs.push({ ino, folder, dir, slot });
        }
      }
    }
    refs.sort((a, b) => a.ino - b.ino);
    return {
      inos: Float64Array.from(refs, (ref) => ref.ino),
      folders: refs.map((ref) => ref.folder),
      dirs: refs.map((ref) => ref.dir),
      slots: Int32Array.from(refs, (ref) => ref.slot),
      generations: Uint32Array.from(refs, (ref) => ref.folder.generation),
      since: new Map(),
      added: 0,
    };
  }

  /**
   * The walk that called {@link visit} went everywhere: drop the folders it
   * did not visit (the source no longer has them), and start a new walk.
   */
  sweep(): void {
    this.settle();
    for (const [dir, folder] of this.#folders) {
      if (folder.visited !== this.#walk) {
        this.#folders.delete(dir);
        this.#dirty = true;
      }
    }
    this.#walk++;
  }

  /**
   * The tree digest recorded for the folder `dir` (see `digest.ts`), if its print is `print`.
   *
   * @param dir the folder's path (`""`: the roots).
   * @param print the print of what the folder holds now.
   * @returns the folder's digest (hex), or undefined when none is recorded for this print.
   */
  folderDigest(dir: string, print: number): string | undefined {
    const folder = this.#folders.get(dir);
    if (folder === undefined || folder.digestPrint !== print || folder.digest === undefined) return;
    return hex(folder.digest);
  }

  /**
   * Record the tree digest of the folder `dir`, for what it holds now (`print`).
   *
   * @param dir the folder's path (`""`: the roots).
   * @param print the print of what the folder holds.
   * @param digest the folder's digest (hex).
   */
  recordFolderDigest(dir: string, print: number, digest: string): void {
    const folder = this.#folder(dir);
    folder.visited = this.#walk;
    if (
      folder.digestPrint === print && folder.digest !== undefined && hex(folder.digest) === digest
    ) {
      return;
    }
    folder.digestPrint = print;
    folder.digest = fromHex(digest);
    this.#dirty = true;
  }

  /**
   * The index as bytes, for the state file; {@link fromBytes} reads them back.
   *
   * @returns the known pairs: the folder count (uint32), then per folder its
   * path (uint32 length, UTF-8), pair count (uint32), names (uint32 length,
   * UTF-8, each ended by NUL), padding to 8 bytes, the prints (float64, two a
   * pair), the source inodes (float64 a pair), the MD5s (16 bytes a pair),
   * the flags (a byte a pair), padding to 8, the digest print (float64) and
   * MD5 (16 bytes), and the folder's source inode (float64). Numbers are
   * little-endian.
   */
  toBytes(): Uint8Array {
    const encoder = new TextEncoder();
    const parts: { path: Uint8Array; names: Uint8Array; folder: Folder }[] = [];
    let length = 4;
    const pad = (n: number) => (8 - (n % 8)) % 8;
    for (const [dir, folder] of this.#folders) {
      if (folder.extra !== undefined || folder.live !== folder.slots) folder.compact();
      if (folder.live === 0 && folder.digest === undefined && Number.isNaN(folder.ino)) continue;
      const part = { path: encoder.encode(dir), names: encoder.encode(folder.names), folder };
      parts.push(part);
      length += 4 + part.path.length + 8 + part.names.length;
      length += pad(length) + folder.slots * (16 + 8 + MD5_BYTES + 1);
      length += pad(length) + 8 + MD5_BYTES + 8;
    }
    const bytes = new Uint8Array(length);
    const view = new DataView(bytes.buffer);
    let at = 0;
    const u32 = (value: number) => (view.setUint32(at, value, true), at += 4);
    u32(parts.length);
    for (const { path, names, folder } of parts) {
      u32(path.length);
      bytes.set(path, at);
      at += path.length;
      u32(folder.slots);
      u32(names.length);
      bytes.set(names, at);
      at += names.length;
      at += pad(at);
      for (let i = 0; i < 2 * folder.slots; i++, at += 8) {
        view.setFloat64(at, folder.prints[i]!, true);
      }
      for (let i = 0; i < folder.slots; i++, at += 8) view.setFloat64(at, folder.inos[i]!, true);
      bytes.set(folder.md5s, at);
      at += folder.slots * MD5_BYTES;
      bytes.set(folder.flags, at);
      at += folder.slots;
      at += pad(at);
      view.setFloat64(at, folder.digest === undefined ? UNKNOWN : folder.digestPrint, true);
      at += 8;
      if (folder.digest) bytes.set(folder.digest, at);
      at += MD5_BYTES;
      view.setFloat64(at, folder.ino, true);
      at += 8;
    }
    return bytes;
  }

  /** Every path with a live pair. */
  *#paths(): Iterable<string> {
    for (const [dir, folder] of this.#folders) {
      const prefix = dir === "" ? "" : `${dir}/`;
      for (let slot = 0; slot < folder.slots; slot++) {
        if (!(folder.flags[slot]! & GONE)) yield prefix + folder.nameAt(slot);
      }
      for (const name of folder.extra?.keys() ?? []) yield prefix + name;
    }
  }

  #folder(dir: string): Folder {
    let folder = this.#folders.get(dir);
    if (folder === undefined) {
      this.#folders.set(dir, folder = new Folder());
      folder.visited = this.#walk; // made by this walk's findings
    }
    return folder;
  }

  #find(path: string):
    | { folder: Folder; slot: number }
    | { folder: Folder; extra: Extra }
    | undefined {
    const folder = this.#folders.get(parentOf(path));
    if (folder === undefined) return undefined;
    const name = nameOf(path);
    const slot = folder.slotOf(name);
    if (slot >= 0) return folder.flags[slot]! & GONE ? undefined : { folder, slot };
    const extra = folder.extra?.get(name);
    return extra === undefined ? undefined : { folder, extra };
  }

  /** Keep {@link pathsOfInode} up to date with a pair set at `path`. */
  #noteInode(path: string, ino: number): void {
    const order = this.#byInode;
    if (order === undefined || Number.isNaN(ino)) return;
    // Much set since it was made: made anew when next asked (its cost spread over the sets).
    if (++order.added > Math.max(4096, order.inos.length / 4)) {
      this.#byInode = undefined;
      return;
    }
    const paths = order.since.get(ino);
    if (paths === undefined) order.since.set(ino, [path]);
    else paths.push(path);
  }

  #set(
    path: string,
    source: number,
    replica: number,
    md5: Uint8Array | undefined,
    ino: number,
  ): void {
    this.#noteInode(path, ino);
    const folder = this.#folder(parentOf(path));
    const name = nameOf(path);
    const slot = folder.slotOf(name);
    if (slot >= 0) {
      if (folder.flags[slot]! & GONE) folder.live++;
      folder.prints[2 * slot] = source;
      folder.prints[2 * slot + 1] = replica;
      folder.inos[slot] = ino;
      folder.flags[slot] = 0;
      if (md5 !== undefined) {
        folder.md5s.set(md5, slot * MD5_BYTES);
        folder.flags[slot] = MD5_KNOWN;
      }
    } else {
      folder.extra ??= new Map();
      if (!folder.extra.has(name)) folder.live++;
      folder.extra.set(
        name,
        md5 === undefined ? { source, replica, ino } : { source, replica, ino, md5 },
      );
      // Many names added at random: sorted arrays again, so lookups stay quick.
      if (folder.extra.size > 64 && folder.extra.size > folder.slots) folder.compact();
      else this.#withExtras.add(folder);
      // A pair added is an object or two until its folder is compacted: a
      // cycle that copies a million files would hold a million of them.
      // Every so many additions, every folder that has some is compacted.
      if (++this.#extras >= MAX_EXTRAS) {
        for (const held of this.#withExtras) if (held.extra !== undefined) held.compact();
        this.#withExtras.clear();
        this.#extras = 0;
      }
    }
    this.#dirty = true;
  }
}

function nameOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));

function hex(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i++) text += HEX[bytes[i]!];
  return text;
}

function fromHex(md5: string): Uint8Array {
  const bytes = new Uint8Array(MD5_BYTES);
  for (let i = 0; i < MD5_BYTES; i++) bytes[i] = parseInt(md5.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/**
 * One file that holds a blob of bytes, plus a small note, and survives a crash
 * at any moment: a reader finds either what was last committed or what was
 * committed before it, never a torn mix. It needs no second file (no temp name
 * beside it), so write access to exactly this one path is enough
 * (`--allow-write=…,log.txt.state`).
 *
 * Layout (the double meta page of LMDB, in small):
 *
 * - two meta pages of {@link PAGE} bytes at offsets 0 and {@link PAGE}; each
 *   names a generation, the offset and length of its blob, the blob's SHA-256,
 *   holds the note (up to {@link MAX_NOTE} bytes), and ends its fixed part
 *   with the SHA-256 of itself and the note. A commit that changes only the
 *   note writes one meta page and no blob;
 * - blobs after the meta pages. A new blob never overwrites the blob of the
 *   newest valid meta page: it goes before that blob when it fits there, else
 *   after it. Then the file is synced, and only then the other meta page is
 *   written (with the next generation) and synced: that write is the commit.
 *
 * Reading takes the meta page with the highest generation whose own checksum
 * and blob checksum hold. A crash while writing a blob leaves the old meta
 * page in charge; a crash while writing a meta page leaves that page invalid
 * (its checksum), so the other one, still valid, wins.
 *
 * @module
 */

/** Size of a meta page; blobs start after two of them. */
export const PAGE = 16384;
const DATA_START = 2 * PAGE;
/** Blobs start on this boundary. */
const ALIGN = 4096;
/** The first bytes of a meta page: what marks a file as ours. */
const MAGIC = new TextEncoder().encode("folder-mirror state\n");
/** Bumped when the layout of the meta page changes. */
export const LAYOUT_VERSION = 1;

const AT_VERSION = 24, AT_NOTE_LENGTH = 28, AT_GENERATION = 32, AT_OFFSET = 40, AT_LENGTH = 48;
const AT_BLOB_SUM = 56, AT_META_SUM = 88, META_BYTES = 120;
/** The most bytes a note may have. */
export const MAX_NOTE = PAGE - META_BYTES;

/** The byte-level file a {@link StateFile} lives in; tests inject faults here. */
export interface Store {
  /** Current length in bytes. */
  size(): number;
  /** Up to `length` bytes from `offset` (fewer at the end of the file). */
  read(offset: number, length: number): Uint8Array;
  /** Write all of `bytes` at `offset`. */
  write(offset: number, bytes: Uint8Array): void;
  /** Make what was written durable before anything written later. */
  sync(): void;
  /** Cut the file to `length` bytes. */
  truncate(length: number): void;
}

/** A {@link Store} over an open file. */
export function fileStore(file: Deno.FsFile): Store {
  return {
    size: () => file.statSync().size,
    read(offset, length) {
      const bytes = new Uint8Array(length);
      file.seekSync(offset, Deno.SeekMode.Start);
      let at = 0;
      while (at < length) {
        const n = file.readSync(bytes.subarray(at));
        if (n === null) break;
        at += n;
      }
      return bytes.subarray(0, at);
    },
    write(offset, bytes) {
      file.seekSync(offset, Deno.SeekMode.Start);
      for (let at = 0; at < bytes.length;) at += file.writeSync(bytes.subarray(at));
    },
    sync: () => file.syncDataSync(),
    truncate: (length) => file.truncateSync(length),
  };
}

/** What {@link StateFile.read} found. */
export type ReadResult =
  /** The newest committed blob and note; `older` says why the newest meta
   * page could not be used, when the one before it was (a torn or damaged
   * page: what the last commit recorded is lost). */
  | {
    readonly kind: "blob";
    readonly blob: Uint8Array;
    readonly note: Uint8Array;
    readonly older?: string;
  }
  /** Nothing was ever committed (a new or empty file). */
  | { readonly kind: "empty" }
  /** The file is ours but no blob in it can be trusted; `why` says what is wrong. */
  | { readonly kind: "damaged"; readonly why: string }
  /** The file was not written by this program (it does not start with its mark). */
  | { readonly kind: "foreign" };

interface Meta {
  readonly slot: number;
  readonly generation: number;
  readonly offset: number;
  readonly length: number;
  readonly blobSum: Uint8Array;
  readonly note: Uint8Array;
}

/** A blob store in one crash-safe file; see the module documentation. */
export class StateFile {
  readonly #store: Store;
  /** The meta page in charge, once read or written. */
  #current: Meta | undefined;
  /**
   * The blob of the last commit whose meta page was written but not known
   * to be on disk (its sync failed, or it was cut short): that page may
   * still count, so no later blob goes over its blob until a commit
   * succeeds. The next commit goes to the same slot, over that page: the
   * page in charge ({@link #current}) is the last one known to be on disk.
   */
  #unsure: { readonly offset: number; readonly length: number } | undefined;

  constructor(store: Store) {
    this.#store = store;
  }

  /** The newest committed blob, or why there is none. */
  async read(): Promise<ReadResult> {
    this.#current = undefined;
    this.#unsure = undefined;
    if (this.#store.size() === 0) return { kind: "empty" };
    const header = this.#store.read(0, DATA_START);
    // Ours once any page bears the mark (a torn page may have lost it; the
    // other one has it). The first write puts a marked page 0 on disk first.
    const pages = [header.subarray(0, PAGE), header.subarray(PAGE)];
    if (!pages.some((page) => page.length > 0 && startsLikeOurs(page))) return { kind: "foreign" };
    const metas: Meta[] = [];
    let why = "no valid meta page", passedOver: string | undefined;
    for (const slot of [0, 1]) {
      const page = header.subarray(slot * PAGE, (slot + 1) * PAGE);
      const parsed = await parseMeta(page, slot);
      if (typeof parsed === "string") {
        if (parsed !== "blank") why = passedOver = parsed;
      } else metas.push(parsed);
    }
    // The newest meta page with a valid checksum is in charge: a crash can
    // leave a torn meta page (its checksum fails, the other one wins), but
    // never a valid one whose blob is broken, since the blob is synced
    // before its meta page is written. A broken blob there is damage.
    const meta = metas.sort((a, b) => b.generation - a.generation)[0];
    if (meta !== undefined) {
      const blob = this.#store.read(meta.offset, meta.length);
      if (blob.length === meta.length && equal(await sha256(blob), meta.blobSum)) {
        this.#current = meta;
        // Generation 0 is the mark a new file gets before its first commit.
        if (meta.generation === 0) {
          return passedOver === undefined
            ? { kind: "empty" }
            : { kind: "damaged", why: passedOver };
        }
        return passedOver === undefined
          ? { kind: "blob", blob, note: meta.note }
          : { kind: "blob", blob, note: meta.note, older: passedOver };
      }
      why = blob.length < meta.length ? "truncated" : "checksum mismatch";
    }
    return { kind: "damaged", why };
  }

  /**
   * Commit `note` and `blob` as the new content; without `blob`, only the
   * note changes (one meta page is written). Call {@link read} first (what
   * it found decides where a new blob goes). A failure (a full disk) leaves
   * the previous content in charge.
   *
   * @throws {RangeError} when the note is longer than {@link MAX_NOTE}, or
   * there is no blob yet to keep.
   */
  async write(note: Uint8Array, blob?: Uint8Array): Promise<void> {
    if (note.length > MAX_NOTE) throw new RangeError(`a note of ${note.length} bytes`);
    // After a failure the page in charge stays the one known to be on disk, not one that
    // a failed sync may have left only in the page cache (Linux then drops it).
    if (this.#current === undefined) {
      // A new or damaged file: first a marked, empty generation 0 in page 0.
      const empty = new Uint8Array(0);
      await this.#commit(empty, 0, {
        offset: DATA_START,
        length: 0,
        blobSum: await sha256(empty),
      });
    }
    const current = this.#current!;
    if (blob === undefined && current.generation === 0) throw new RangeError("no blob to keep");
    const place = blob === undefined ? current : {
      offset: placeAfter(current, blob.length, this.#unsure),
      length: blob.length,
      blobSum: await sha256(blob),
    };
    if (blob !== undefined) {
      this.#store.write(place.offset, blob);
      this.#store.sync();
    }
    await this.#commit(note, current.generation + 1, place);
    // The blob before the new one is garbage now: a file that ends past the
    // new blob is cut (a crash before this costs only space).
    const end = place.offset + place.length;
    if (place.offset < current.offset && this.#store.size() > end) this.#store.truncate(end);
  }

  /** Write and sync the meta page of `generation` in the slot not in charge. */
  async #commit(
    note: Uint8Array,
    generation: number,
    place: { offset: number; length: number; blobSum: Uint8Array },
  ): Promise<void> {
    const current = this.#current;
    const slot = current === undefined ? 0 : 1 - current.slot;
    const page = new Uint8Array(META_BYTES + note.length);
    page.set(MAGIC);
    const view = new DataView(page.buffer);
    view.setUint32(AT_VERSION, LAYOUT_VERSION, true);
    view.setUint32(AT_NOTE_LENGTH, note.length, true);
    view.setFloat64(AT_GENERATION, generation, true);
    view.setFloat64(AT_OFFSET, place.offset, true);
    view.setFloat64(AT_LENGTH, place.length, true);
    page.set(place.blobSum, AT_BLOB_SUM);
    page.set(note, META_BYTES);
    page.set(await metaSum(page), AT_META_SUM);
    // Until it is synced, this page may or may not count.
    this.#unsure = { offset: place.offset, length: place.length };
    this.#store.write(slot * PAGE, page);
    this.#store.sync();
    this.#unsure = undefined;
    // `place` may be the page in charge itself (a note alone): its slot and generation are not
    // this page's.
    this.#current = { ...place, slot, generation, note: note.slice() };
  }
}

/** Where a blob of `length` bytes goes, never over `current`'s blob, nor over the blob of
 * a commit that may have reached the disk (`unsure`). */
function placeAfter(
  current: Meta,
  length: number,
  unsure?: { readonly offset: number; readonly length: number },
): number {
  const kept = [current, ...(unsure ? [unsure] : [])].filter((blob) => blob.length > 0);
  if (kept.every((blob) => DATA_START + length <= blob.offset)) return DATA_START;
  const end = Math.max(...kept.map((blob) => blob.offset + blob.length));
  return Math.ceil(end / ALIGN) * ALIGN;
}

/** A meta page, `"blank"` for an all-zero one, or why it cannot be trusted. */
async function parseMeta(page: Uint8Array, slot: number): Promise<Meta | string> {
  if (isBlank(page)) return "blank";
  if (!startsLikeOurs(page) || page.length < META_BYTES) return "truncated meta page";
  const view = new DataView(page.buffer, page.byteOffset, page.length);
  const noteLength = view.getUint32(AT_NOTE_LENGTH, true);
  if (noteLength > MAX_NOTE || page.length < META_BYTES + noteLength) return "damaged meta page";
  const whole = page.subarray(0, META_BYTES + noteLength);
  if (!equal(await metaSum(whole), whole.subarray(AT_META_SUM, META_BYTES))) {
    return "damaged meta page";
  }
  const version = view.getUint32(AT_VERSION, true);
  if (version !== LAYOUT_VERSION) return `layout version ${version}, not ${LAYOUT_VERSION}`;
  return {
    slot,
    generation: view.getFloat64(AT_GENERATION, true),
    offset: view.getFloat64(AT_OFFSET, true),
    length: view.getFloat64(AT_LENGTH, true),
    blobSum: whole.slice(AT_BLOB_SUM, AT_BLOB_SUM + 32),
    note: whole.slice(META_BYTES),
  };
}

/** The checksum of a meta page: its fixed part before the sum, then its note. */
function metaSum(page: Uint8Array): Promise<Uint8Array> {
  const covered = new Uint8Array(page.length - 32);
  covered.set(page.subarray(0, AT_META_SUM));
  covered.set(page.subarray(META_BYTES), AT_META_SUM);
  return sha256(covered);
}

function isBlank(bytes: Uint8Array): boolean {
  return bytes.every((byte) => byte === 0);
}

/** Whether `bytes` begins with the mark, or with as much of it as there is. */
function startsLikeOurs(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.length, MAGIC.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== MAGIC[i]) return false;
  return true;
}

async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/**
 * {@link S3Replica}: a replica in an S3 bucket (under a key prefix), laid out
 * as rclone lays out a tree (`s3_layout.ts`), so either tool reads the
 * other's replica. It is a {@link Replica} like the local folder: the engine
 * does not know the difference.
 *
 * - Listing: one request per folder (a page per thousand objects). An
 *   object's mtime and mode are in its metadata, which listings do not carry:
 *   what was learnt of an object (written or examined) is kept in an
 *   {@link ObjectMemory} (saved in the state file) while its size, ETag and
 *   last-modified time stay as they were; any other object is examined (a
 *   HEAD; a symlink's target, a GET).
 * - An entry's stat key is its size, mtime and ETag (`ino`); `ctimeMs` is 0:
 *   an object's content never changes under the same ETag, so a key is
 *   trusted at once.
 * - Writes: a file is one PUT up to the part size, else a multipart upload
 *   (aborted when it fails or is stopped; ones a killed run left behind are
 *   aborted when the next cycle opens the replica). Readers never see part
 *   of an object. Every write sends the content's MD5 (`Content-MD5`) and
 *   records it (`x-amz-meta-md5chksum`).
 * - Attributes: a file's are replaced by copying the object onto itself with
 *   new metadata; a folder's are its marker's metadata.
 *
 * @module
 */
import { createHash } from "node:crypto";
import pLimit from "npm:p-limit@^7.3.0";
import type { Entry, Kind, StatKey } from "../../core/entry.ts";
import { asError, reason } from "../../core/error.ts";
import { checkSource, notCopied } from "../../core/source.ts";
import type { Rate } from "../../core/rate.ts";
import type {
  Attributes,
  AttributesResult,
  Backups,
  FileWrite,
  Listed,
  Listing,
  Replica,
  RootInfo,
  WriteResult,
} from "../../core/replica.ts";
import { DEFAULT_PART, S3Error, type S3Folder, type S3Head, type S3Store } from "./store.ts";
import { ListedAhead } from "../../core/listed_ahead.ts";
import { Hasher } from "../../core/hash.ts";
import { textPrint } from "../../core/text.ts";
import { LOCKS } from "./lock.ts";
import { type Known, ObjectMemory } from "./memory.ts";
import { S3Backups } from "./backups.ts";
import { attributesOf, entriesOf, isLinkName, LINK_SUFFIX, metaOf } from "./layout.ts";

/** Files of a batch read and sent at once. */
const WRITES_AT_ONCE = 32;
/** Folder listings asked for ahead of the walk at most. */
const LISTED_AHEAD = 64;
/** Files up to this size are one PUT streamed from disk; bigger ones are uploaded in parts. */
const UPLOAD_CUTOFF = 200 << 20;
/** Files up to this size are read synchronously. */
const SYNC_READ = 1 << 20;
/** Mode of a folder or file whose object records none. */
const DIR_MODE = 0o755, FILE_MODE = 0o644;

/** Where an {@link S3Replica} is and what it is told. */
export interface S3ReplicaOptions {
  /** The bucket and prefix. */
  readonly store: S3Store;
  /** How messages name it (`s3://bucket/prefix`). */
  readonly where: string;
  /** The replica's identity (endpoint, bucket and prefix). */
  readonly id: string;
  /** Whether the tree is under a key prefix (its root has a marker) rather
   * than the whole bucket. */
  readonly prefixed: boolean;
  /**
   * What is known of the objects (kept in the state file).
   *
   * @default an empty memory
   */
  readonly memory?: ObjectMemory;
  /**
   * Writes nothing when opened (a dry run): left-behind uploads are not aborted.
   *
   * @default {false}
   */
  readonly readOnly?: boolean;
  /**
   * Told of a multipart upload a killed run left behind, once aborted.
   *
   * @default nothing
   */
  readonly onAbortedUpload?: (path: string) => void;
  /**
   * MD5s are always read from the objects' content (`--verify`), never taken
   * from ETags or metadata.
   *
   * @default {false}
   */
  readonly readBack?: boolean;
  /**
   * Called as each cycle opens the replica, unless `readOnly` (the lock is
   * renewed); what it throws makes the replica unusable for the cycle.
   *
   * @default nothing
   */
  readonly beforeCycle?: () => Promise<void>;
  /**
   * The largest object a move copies in one request, and the part size of
   * bigger ones (S3: 5 GiB; tests lower it).
   *
   * @default S3's
   */
  readonly copy?: { readonly limit?: number; readonly partSize?: number };
  /**
   * `--backup-dir`: a prefix in the same bucket (the bucket's store, without
   * a prefix), and how messages name it.
   *
   * @default none
   */
  readonly backupDir?: {
    readonly bucket: S3Store;
    readonly prefix: string;
    readonly where: string;
  };
  /**
   * `--bwlimit`: the bytes of every file written are taken from it first (a
   * file bigger than one of its pieces is streamed from disk, a piece at a time).
   *
   * @default no limit
   */
  readonly rate?: Rate;
}

/** A replica in a bucket; see the module documentation. */
export class S3Replica implements Replica {
  readonly where: string;
  readonly #store: S3Store;
  readonly #memory: ObjectMemory;
  readonly #options: S3ReplicaOptions;
  /** Bytes of object content read for MD5s. */
  hashedBytes = 0;
  /** Every write reads the file through the program, for its MD5: learnt. */
  learnsMd5(): boolean {
    return true;
  }
  /** Small writes are worth sending side by side from the first one. */
  readonly batched = true;
  /** Folder listings asked for ahead of the walk (see {@link readAhead}). */
  readonly #ahead = new ListedAhead<S3Folder>(LISTED_AHEAD);
  readonly #writing = pLimit(WRITES_AT_ONCE);
  #readingAhead = false;
  /** Paths whose object name the store refused, and its answer: left out from then on. */
  readonly #refusedNames = new Map<string, string>();

  /**
   * A replica in the bucket and prefix of `options.store`; nothing is asked
   * of the store until it is opened.
   *
   * @param options where and how; see {@link S3ReplicaOptions}.
   */
  constructor(options: S3ReplicaOptions) {
    this.where = options.where;
    this.#store = options.store;
    this.#memory = options.memory ?? new ObjectMemory();
    this.#options = options;
    const backup = options.backupDir;
    if (backup !== undefined) {
      this.backups = new S3Backups({
        bucket: backup.bucket,
        replicaPrefix: options.store.key("").replace(/\/$/, ""),
        prefix: backup.prefix,
        where: backup.where,
        ...(options.copy ? { copy: options.copy } : {}),
      });
    }
  }

  /** Where what a cycle deletes or overwrites is kept (`--backup-dir`), if anywhere. */
  readonly backups?: Backups;

  /** The bucket (missing: undefined) and the root's attributes; left-behind uploads aborted. */
  async open(): Promise<RootInfo | undefined> {
    this.close();
    if (this.#options.readOnly) {
      if (!await this.#store.bucketExists()) return undefined;
    } else {
      // Listing the uploads says whether the bucket exists, too.
      let uploads;
      try {
        uploads = await this.#store.uploads();
      } catch (error) {
        if (error instanceof S3Error && error.code === "NoSuchBucket") return undefined;
        throw error;
      }
      await this.#options.beforeCycle?.();
      for (const upload of uploads) {
        await this.#store.abortUpload(upload.path, upload.uploadId);
        this.#options.onAbortedUpload?.(upload.path);
      }
    }
    return { entry: await this.#rootEntry(), id: this.#options.id };
  }

  async #rootEntry(): Promise<Entry> {
    const root = { kind: "dir" as const, size: 0, ctimeMs: 0, ino: 0 };
    if (!this.#options.prefixed) return { ...root, mtimeMs: 0, mode: DIR_MODE };
    const known = this.#memory.get("") ?? await this.#examineMarker("");
    return { ...root, mtimeMs: known?.mtimeMs ?? 0, mode: known?.mode ?? DIR_MODE };
  }

  /**
   * From now until the replica is opened again, each folder listed has its
   * subfolders listed ahead, in the walk's order, at most
   * {@link LISTED_AHEAD} folders ahead: the walk finds them listed.
   */
  readAhead(): void {
    this.#readingAhead = true;
  }

  /**
   * The walk will not list `dirs`: their listings ahead are dropped.
   *
   * @param dirs folder paths.
   */
  skip(dirs: readonly string[]): void {
    this.#ahead.skip(dirs);
  }

  /** Stop reading ahead; drop what was read ahead. */
  close(): void {
    this.#readingAhead = false;
    this.#ahead.clear();
  }

  async list(dir: string): Promise<Listing> {
    let folder = await (this.#ahead.take(dir) ?? this.#store.list(dir));
    if (this.#readingAhead) this.#ahead.ask(dir, folder.folders, (path) => this.#store.list(path));
    if (dir === "" && !this.#options.prefixed) {
      // The folder of the mirrors' locks is not an entry of a tree that is the whole bucket.
      folder = { ...folder, folders: folder.folders.filter((name) => name !== LOCKS) };
    }
    const { entries, clashes } = entriesOf(folder);
    const prefix = dir === "" ? "" : `${dir}/`;
    const names = new Set<string>();
    const problems: { name: string; error: Error }[] = clashes.map((name) => ({
      name,
      error: new Error(`more than one object in the bucket stands for '${prefix}${name}'`),
    }));
    const listed = await Promise.all(entries.map(async (laid): Promise<Listed | undefined> => {
      const path = prefix + laid.name;
      if (laid.name === "" || laid.name === "." || laid.name === "..") {
        // A key such as `a//b` or `a/./b`: not an entry a folder can hold.
        problems.push({ name: laid.name, error: new Error("an object name no folder can hold") });
        return undefined;
      }
      try {
        if (laid.kind === "dir") {
          names.add(`${laid.name}/`);
          const known = this.#memory.get(`${path}/`) ?? await this.#examineMarker(path);
          return { name: laid.name, entry: folderEntry(known) };
        }
        const object = laid.object!;
        names.add(object.name);
        const objectPath = prefix + object.name;
        const known = this.#memory.match(objectPath, object) ??
          await this.#examine(objectPath, laid.kind, object);
        if (known === undefined) return undefined; // gone since the listing
        return { name: laid.name, entry: objectEntry(laid.kind, known) };
      } catch (error) {
        problems.push({ name: laid.name, error: asError(error) });
        return undefined;
      }
    }));
    this.#memory.listed(dir, names);
    return {
      entries: listed.filter((entry) => entry !== undefined),
      problems: problems.sort((a, b) => (a.name < b.name ? -1 : 1)),
    };
  }

  /**
   * Learn what an object is (its metadata; a symlink's target too). When it
   * was `listed`, the listing's last-modified time is what is remembered (a
   * HEAD gives whole seconds where a listing may give milliseconds: the next
   * listing would not match).
   */
  async #examine(
    objectPath: string,
    kind: "file" | "symlink",
    listed?: { readonly etag: string; readonly lastModified: number },
  ): Promise<Known | undefined> {
    let head: S3Head | undefined, target: string | undefined;
    if (kind === "symlink") {
      const read = await this.#store.read(objectPath);
      if (read !== undefined) {
        head = read;
        target = new TextDecoder().decode(read.body);
      }
    } else head = await this.#store.head(objectPath);
    if (head === undefined) return undefined;
    const found = attributesOf(head.meta);
    // A single-part object's ETag is its MD5 as the store computed it: it wins over a record.
    const md5 = isMd5(head.etag) ? head.etag : found.md5;
    const known: Known = {
      etag: head.etag,
      lastModified: listed?.etag === head.etag
        ? listed.lastModified
        : this.#memory.get(objectPath)?.etag === head.etag
        ? this.#memory.get(objectPath)!.lastModified // as listed earlier: keep its precision
        : head.lastModified,
      size: head.size,
      mtimeMs: found.mtimeMs ?? head.lastModified,
      mode: found.mode ?? (kind === "symlink" ? 0o777 : FILE_MODE),
      ...(md5 === undefined ? {} : { md5 }),
      ...(target === undefined ? {} : { target }),
    };
    this.#memory.set(objectPath, known);
    return known;
  }

  /** Learn a folder's attributes from its marker (none: undefined). */
  async #examineMarker(dir: string): Promise<Known | undefined> {
    const markerPath = dir === "" ? "" : `${dir}/`;
    const head = await this.#store.head(markerPath);
    if (head === undefined) return undefined;
    const found = attributesOf(head.meta);
    const known: Known = {
      etag: head.etag,
      lastModified: head.lastModified,
      size: head.size,
      mtimeMs: found.mtimeMs ?? head.lastModified,
      mode: found.mode ?? DIR_MODE,
    };
    this.#memory.set(markerPath, known);
    return known;
  }

  async stat(path: string): Promise<Entry | undefined> {
    if (path === "") return await this.#store.bucketExists() ? await this.#rootEntry() : undefined;
    const file = await this.#examine(path, "file");
    if (file !== undefined) return objectEntry("file", file);
    const link = await this.#examine(path + LINK_SUFFIX, "symlink");
    if (link !== undefined) return objectEntry("symlink", link);
    const marker = await this.#examineMarker(path);
    if (marker !== undefined) return folderEntry(marker);
    const below = await this.#store.list(path);
    return below.objects.length > 0 || below.folders.length > 0
      ? folderEntry(undefined)
      : undefined;
  }

  async md5(path: string, _size: number, signal?: AbortSignal): Promise<string> {
    const known = this.#options.readBack ? undefined : this.#memory.get(path);
    if (known?.md5 !== undefined) return known.md5;
    const hash = createHash("md5");
    const stream = await this.#store.get(path, signal);
    for await (const chunk of stream) {
      if (signal?.aborted) {
        await stream.cancel().catch(() => {});
        throw signal.reason;
      }
      hash.update(chunk);
      this.hashedBytes += chunk.length;
    }
    return hash.digest("hex");
  }

  async makeRoot(): Promise<void> {
    await this.#store.createBucket();
    if (this.#options.prefixed) await this.#putMarker("", DIR_MODE, Date.now());
  }

  /**
   * Nothing to do now: objects below a folder need no marker to be written,
   * and the marker comes with the folder's attributes, which a cycle sets
   * after every write in it (a stopped cycle leaves a folder without a
   * marker, which the next one gives it).
   */
  makeFolder(): void {}

  async #putMarker(dir: string, mode: number, mtimeMs: number): Promise<void> {
    const markerPath = dir === "" ? "" : `${dir}/`;
    const folder = { kind: "dir" as const, size: 0, mtimeMs, ctimeMs: 0, ino: 0, mode };
    const etag = await this.#store.put(markerPath, new Uint8Array(0), metaOf(folder));
    this.#memory.set(markerPath, { etag, lastModified: NaN, size: 0, mtimeMs, mode });
  }

  async writeFile(write: FileWrite, signal?: AbortSignal): Promise<WriteResult> {
    try {
      signal?.throwIfAborted();
      const before = checkSource(write.from, write.expectedKey);
      if (before !== "same") return notCopied(before);
      const attributes = { kind: "file" as const, size: write.size, ctimeMs: 0, ino: 0 };
      const file = { ...attributes, mtimeMs: write.mtimeMs, mode: write.mode };
      let etag: string, md5: string;
      const rate = this.#options.rate;
      if (write.size <= DEFAULT_PART && !(rate && write.size > rate.chunk)) {
        // One PUT from memory (small files read synchronously: a fraction of an async read's cost).
        const bytes = write.size <= SYNC_READ
          ? Deno.readFileSync(write.from)
          : await Deno.readFile(write.from, signal ? { signal } : {});
        if (bytes.length !== write.size) return notCopied("changed");
        md5 = createHash("md5").update(bytes).digest("hex");
        await rate?.take(bytes.length, signal);
        etag = await this.#store.put(write.path, bytes, metaOf(file, md5), { md5 });
      } else {
        // Read twice: for its MD5 (recorded with it, checked by the store),
        // then sent from disk: one PUT up to rclone's cut-off, else in parts.
        // A Hasher of its own: one reads through its buffer across awaits.
        md5 = await new Hasher().md5(write.from, write.size, signal);
        const meta = metaOf(file, md5);
        const options = { ...(signal ? { signal } : {}), ...(rate ? { rate } : {}) };
        etag = write.size <= UPLOAD_CUTOFF
          ? await this.#store.putFromFile(write.path, write.from, write.size, md5, meta, options)
          : await this.#store.putFile(write.path, write.from, write.size, meta, options);
      }
      this.#memory.set(write.path, {
        etag,
        lastModified: NaN,
        size: write.size,
        mtimeMs: write.mtimeMs,
        mode: write.mode,
        md5,
      });
      if (checkSource(write.from, write.expectedKey) !== "same") {
        // What was sent is whole, but maybe not the file as it is now: compared next cycle.
        this.#memory.forget(write.path);
        return notCopied("changed");
      }
      return { status: "done", key: [write.size, write.mtimeMs, 0, etagNumber(etag)], md5 };
    } catch (error) {
      if (signal?.aborted) return { status: "skipped", reason: "the run was stopped" };
      if (error instanceof Deno.errors.NotFound) return notCopied("gone");
      if (error instanceof S3Error && NAME_REFUSED.has(error.code)) {
        // Not worth a try every cycle: left out from now on, said once.
        const why = `the store refuses its name (${reason(error)})`;
        this.#refusedNames.set(write.path, why);
        return { status: "skipped", reason: `${why}; it is left out from now on`, final: true };
      }
      const { name, message } = asError(error);
      return { status: "failed", name, message };
    }
  }

  /** Each file is read only when a request can take it: memory is {@link WRITES_AT_ONCE} files. */
  writeFiles(writes: readonly FileWrite[]): Promise<WriteResult[]> {
    return Promise.all(writes.map((write) => this.#writing(() => this.writeFile(write))));
  }

  async makeSymlink(
    path: string,
    target: string,
    _owner?: unknown,
    mtimeMs: number = Date.now(),
  ): Promise<undefined> {
    const link = { kind: "symlink" as const, size: 0, mtimeMs, ctimeMs: 0, ino: 0, mode: 0o777 };
    const body = new TextEncoder().encode(target);
    const etag = await this.#store.put(path + LINK_SUFFIX, body, metaOf(link));
    this.#memory.set(path + LINK_SUFFIX, {
      etag,
      lastModified: NaN,
      size: body.length,
      mtimeMs,
      mode: 0o777,
      target,
    });
    return undefined;
  }

  async setAttributes(
    path: string,
    kind: "file" | "dir" | "symlink",
    attributes: Attributes,
  ): Promise<AttributesResult> {
    if (kind === "symlink") {
      // An object has no owner and a link's mode means nothing: its mtime is
      // kept by writing the link object again.
      if (attributes.mtimeMs === undefined) return {};
      const known = this.#memory.get(path + LINK_SUFFIX)?.target;
      const target = known ??
        new TextDecoder().decode((await this.#store.read(path + LINK_SUFFIX))?.body);
      await this.makeSymlink(path, target, undefined, attributes.mtimeMs);
      return {};
    }
    if (kind === "dir") {
      if (path === "" && !this.#options.prefixed) return {}; // the bucket itself: nowhere to keep them
      // Opening a folder for writes (its mode alone): a mode binds nothing in a bucket.
      if (attributes.mtimeMs === undefined) return {};
      const known = this.#memory.get(path === "" ? "" : `${path}/`);
      await this.#putMarker(
        path,
        attributes.mode ?? known?.mode ?? DIR_MODE,
        attributes.mtimeMs ?? known?.mtimeMs ?? Date.now(),
      );
      return {};
    }
    const known = this.#memory.get(path) ?? await this.#examine(path, "file");
    if (known === undefined) throw new Deno.errors.NotFound(`${path}: no such object`);
    const mtimeMs = attributes.mtimeMs ?? known.mtimeMs, mode = attributes.mode ?? known.mode;
    const file = { kind: "file" as const, size: known.size, mtimeMs, ctimeMs: 0, ino: 0, mode };
    const copied = await this.#store.setMeta(path, metaOf(file, known.md5));
    this.#memory.set(path, {
      ...known,
      etag: copied.etag,
      lastModified: copied.lastModified,
      mtimeMs,
      mode,
    });
    const expected = attributes.expect;
    if (expected !== undefined && expected.ino !== etagNumber(known.etag)) return {};
    const key: StatKey = [known.size, mtimeMs, 0, etagNumber(copied.etag)];
    return { key };
  }

  /** A bucket has no folders to rename: a folder's files are moved one by one. */
  readonly movesFolders = false;

  /**
   * Move the file `from` to `to`: a copy on the server (its metadata with
   * it; no upload), then the old object's deletion.
   *
   * @param from the file's path.
   * @param to its new path, where nothing is.
   * @param kind a file (a bucket moves no folder).
   * @returns the stat key at its new path.
   * @throws {Error} when something is at `to`, or `from` is no file.
   */
  async move(from: string, to: string, kind: "file" | "dir"): Promise<StatKey> {
    if (kind !== "file") throw new Error("a bucket cannot move a folder");
    if (await this.#examine(to, "file") !== undefined) {
      throw new Deno.errors.AlreadyExists(`${to} exists already`);
    }
    const known = this.#memory.get(from) ?? await this.#examine(from, "file");
    if (known === undefined) throw new Deno.errors.NotFound(`${from}: no such object`);
    const copied = await this.#store.copy(from, to, known.size, this.#options.copy ?? {});
    this.#memory.set(to, { ...known, etag: copied.etag, lastModified: copied.lastModified });
    await this.remove(from, "file");
    return [known.size, known.mtimeMs, 0, etagNumber(copied.etag)];
  }

  async remove(path: string, kind: Kind): Promise<void> {
    let paths: string[];
    if (kind === "dir") {
      paths = await this.#store.pathsUnder(path);
      this.#memory.forgetFolder(path);
    } else {
      paths = [kind === "symlink" ? path + LINK_SUFFIX : path];
      this.#memory.forget(paths[0]!);
    }
    const failed = await this.#store.deleteMany(paths);
    if (failed.length > 0) throw failed[0]!.error;
  }

  /** An S3 replica never holds temp entries: every write is whole or absent. */
  isTemp(): boolean {
    return false;
  }

  /**
   * Why a source entry cannot be mirrored here: a file whose name ends in
   * `.rclonelink` would read back as a symlink; nor one whose object name
   * would be longer than S3 allows, or that the store refused.
   *
   * @param path the source entry's path.
   * @param kind what it is.
   * @returns the reason, or undefined when it can be mirrored.
   */
  refuses(path: string, kind: Kind): string | undefined {
    const name = path.slice(path.lastIndexOf("/") + 1);
    if (path === LOCKS && !this.#options.prefixed) {
      return "in a replica that is a whole bucket, that name is the folder of the mirrors' locks";
    }
    if (kind === "file" && isLinkName(name)) {
      return `in an S3 replica a name ending in ${LINK_SUFFIX} stands for a symlink (rclone's --links)`;
    }
    const bytes = encoder.encode(this.#store.key(path)).length + (kind === "dir" ? 1 : 0);
    if (bytes > MAX_KEY_BYTES) {
      return `its object name would be ${bytes} bytes, more than the ${MAX_KEY_BYTES} S3 allows`;
    }
    return this.#refusedNames.get(path);
  }
}

/** The longest object name (key) S3 allows, in bytes. */
const MAX_KEY_BYTES = 1024;
/** The store's answers that refuse an object's name. */
const NAME_REFUSED = new Set(["InvalidObjectName", "KeyTooLongError"]);
const encoder = new TextEncoder();

/** The entry of an object as known. */
function objectEntry(kind: "file" | "symlink", known: Known): Entry {
  const entry = {
    kind,
    size: known.size,
    mtimeMs: known.mtimeMs,
    ctimeMs: 0,
    ino: etagNumber(known.etag),
    mode: known.mode,
  };
  return kind === "symlink" ? { ...entry, target: known.target ?? "" } : entry;
}

/** A folder's entry from its marker (none: a folder with default attributes). */
function folderEntry(known: Known | undefined): Entry {
  return {
    kind: "dir",
    size: 0,
    mtimeMs: known?.mtimeMs ?? 0,
    ctimeMs: 0,
    ino: 0,
    mode: known?.mode ?? DIR_MODE,
  };
}

/** Whether an ETag is the MD5 of the content (a single-part upload's). */
function isMd5(etag: string): boolean {
  return /^[0-9a-f]{32}$/.test(etag);
}

/**
 * An ETag as a number for a stat key: its first 52 bits (an MD5's, or a
 * multipart ETag's); any other text hashed (FNV-1a) to as many.
 */
export function etagNumber(etag: string): number {
  if (/^[0-9a-f]{13}/.test(etag)) return parseInt(etag.slice(0, 13), 16);
  return textPrint(etag);
}

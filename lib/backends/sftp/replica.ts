/**
 * {@link SftpReplica}: a replica folder on another machine, reached over
 * SFTP (version 3, as OpenSSH serves it, with its extensions). It is a
 * {@link Replica} like the local folder: the engine does not know the
 * difference.
 *
 * - Listing: where a shell is allowed, one `find -printf` lists the whole
 *   tree ahead of the walk (inode and ctime included, which SFTP does not
 *   give); else one `readdir` per folder, asked for ahead of the walk, and
 *   entries keep only size and whole-second mtime (rsync's quick check).
 * - Stat keys: size, mtime and, with a shell, a number for the inode and
 *   ctime ({@link InodeMemory}): the program's own writes keep the key they
 *   returned, and a change behind its back gives another.
 * - Writes: a temp name in the same folder, the bytes (many requests in
 *   flight), mode and mtime on the handle, then `posix-rename@openssh.com`
 *   over the name: readers see the old file or the new one, never a part.
 *   Small files are written side by side (many at once).
 * - MD5s of replica files, where the state cannot vouch for them: computed on
 *   the host by `md5sum` (a batch per folder, with each file's stat after)
 *   where a shell is allowed, else read back over SFTP.
 * - mtimes are whole seconds (SFTP version 3): the engine compares at that.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import pLimit from "npm:p-limit@^7.3.0";
import type { Entry, Kind, StatKey } from "../../core/entry.ts";
import { asError } from "../../core/error.ts";
import { compareNames, joinPath, parentOf } from "../../core/paths.ts";
import type { Rate } from "../../core/rate.ts";
import {
  type Attributes,
  type AttributesResult,
  type Backups,
  BIG_FILE,
  type FileId,
  type FileWrite,
  type Listed,
  type Listing,
  type Replica,
  type RootInfo,
  type WriteResult,
} from "../../core/replica.ts";
import type { SshLink, SshRemote } from "./connect.ts";
import { ListedAhead } from "../../core/listed_ahead.ts";
import { InodeMemory } from "./memory.ts";
import { SftpBackups } from "./backups.ts";
import {
  CHUNK,
  explained,
  IN_FLIGHT,
  isMissing,
  makeFolders,
  removeTree,
  sftpError,
  shellQuote,
  uploadFile,
} from "./upload.ts";
import type { Uploader } from "./upload_pool.ts";

/** Files of a batch written at once. */
const WRITES_AT_ONCE = 32;
/** Folder listings asked for ahead of the walk at most (no shell). */
const LISTED_AHEAD = 64;
/** Files per `md5sum` batch at most. */
const HASH_BATCH = 512;
/** Files read back at once for their MD5 (no shell). */
const READS_AT_ONCE = 8;

/**
 * What `find -printf` gives of each entry: its type, inode, size, mtime,
 * ctime, mode, link count and path (`%P` below the starting point, `%p` as
 * given), then a symlink's target, each record ended by a NUL.
 */
const FIELDS = "%y %i %s %T@ %C@ %m %n";

/** `find` printing the record of each of the script's arguments (see {@link FIELDS}). */
const FIND_EACH = `find "$@" -maxdepth 0 -printf "${FIELDS} %p\\\\0%l\\\\0"`;

/** An `%T@`-style time (`1733459045.1234567890`) in whole milliseconds. */
function timeMs(text: string): number {
  const dot = text.indexOf(".");
  if (dot < 0) return Number(text) * 1000;
  return Number(text.slice(0, dot)) * 1000 + Number(text.slice(dot + 1, dot + 4).padEnd(3, "0"));
}

const KINDS: Record<string, Kind> = { f: "file", d: "dir", l: "symlink" };

/** One record of `find -printf`: the entry, its path as printed, and `inode:ctime`. */
interface Found {
  readonly path: string;
  readonly kind: Kind;
  readonly size: number;
  readonly mtimeMs: number;
  readonly mode: number;
  readonly nlink: number;
  /** Its inode number. */
  readonly ino: number;
  readonly identity: string;
  readonly target?: string;
}

/**
 * The records of `find -printf "FIELDS %P\0%l\0"` (or `%p`).
 *
 * @param text the output.
 * @returns the records, in order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseFound } from "./replica.ts";
 * const [file, link] = parseFound("f 12 3 1700000000.5000000000 1700000001.25 644 1 a b\0\0" +
 *   "l 13 1 1700000000.0000000000 1700000001.0 777 1 d/l\0a b\0");
 * assert.deepEqual(file, { path: "a b", kind: "file", size: 3, mtimeMs: 1700000000500,
 *   mode: 0o644, nlink: 1, ino: 12, identity: "12:1700000001.25" });
 * assert.equal(link?.target, "a b");
 * ```
 */
export function parseFound(text: string): Found[] {
  const fields = text.split("\0");
  const found: Found[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const record = fields[i]!;
    let at = 0;
    const parts: string[] = [];
    for (let n = 0; n < 7; n++) {
      const space = record.indexOf(" ", at);
      parts.push(record.slice(at, space));
      at = space + 1;
    }
    const [type, ino, size, mtime, ctime, mode, nlink] = parts as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const kind = KINDS[type] ?? "other";
    found.push({
      path: record.slice(at),
      kind,
      size: Number(size),
      mtimeMs: timeMs(mtime),
      mode: parseInt(mode, 8),
      nlink: Number(nlink),
      ino: Number(ino),
      identity: `${ino}:${ctime}`,
      ...(kind === "symlink" ? { target: fields[i + 1]! } : {}),
    });
  }
  return found;
}

/** The tree as one `find` listed it. */
interface TreeAhead {
  /** The records, by folder. */
  readonly folders: Map<string, Found[]>;
  /** The folders listed in full and not yet taken by the walk. */
  readonly listed: Set<string>;
}

/** Where an {@link SftpReplica} is and how it works. */
export interface SftpReplicaOptions {
  /** The connection. */
  readonly remote: SshRemote;
  /** How messages name it (`--replica` as given). */
  readonly where: string;
  /** Its identity (`sftp://user@host:port/abs/path`). */
  readonly id: string;
  /** The replica folder's absolute path on the host. */
  readonly root: string;
  /** A shell may run commands there (`find`, `md5sum`, `rm`). */
  readonly exec: boolean;
  /** What is known of the files it wrote (kept in the state file). */
  readonly memory?: InodeMemory;
  /** A new temp name (a name, not a path). */
  readonly tempName: () => string;
  /**
   * Big files go through these (workers with connections of their own), when given.
   *
   * @default on the replica's connection
   */
  readonly uploaders?: () => Uploader | undefined;
  /** `--backup-dir`: a folder on the same host (absolute), and how messages name it. */
  readonly backupDir?: { readonly path: string; readonly where: string };
  /** A path on the host left out of listings (the mirrors' locks, when inside). */
  readonly hidden?: string;
  /**
   * `--bwlimit`: the bytes of every file written are taken from it first.
   *
   * @default no limit
   */
  readonly rate?: Rate;
  /**
   * MD5s are always computed afresh (`--verify`).
   *
   * @default {false}
   */
  readonly readBack?: boolean;
  /**
   * Called as each cycle opens the replica (the lock is renewed); what it
   * throws makes the replica unusable for the cycle.
   *
   * @default nothing
   */
  readonly beforeCycle?: () => Promise<void>;
}

/** A replica folder on an SSH host; see the module documentation. */
export class SftpReplica implements Replica {
  readonly where: string;
  /** SFTP version 3 carries whole seconds. */
  readonly mtimePrecision = 1000;
  /** Small writes are worth sending side by side from the first one. */
  readonly batched = true;
  /** One connection carries every write: two big files keep it busy. */
  readonly bigWritesAtOnce = 2;
  readonly #options: SftpReplicaOptions;
  readonly #memory: InodeMemory;
  readonly #writing = pLimit(WRITES_AT_ONCE);
  readonly #reading = pLimit(READS_AT_ONCE);
  /** The whole tree as `find` listed it ahead of the walk: records by folder, and the
   * folders listed in full (taken out as the walk lists them). */
  #tree: Promise<TreeAhead | undefined> | undefined;
  /** Folder listings asked for ahead of the walk (no shell). */
  readonly #ahead = new ListedAhead<Listing>(LISTED_AHEAD);
  #readingAhead = false;
  /** MD5s asked for ahead of the comparisons, with each file's entry after. */
  readonly #hashes = new Map<string, Promise<{ md5?: string; entry?: Entry }>>();
  /** Entries a batch just examined, for the stat that follows an MD5. */
  readonly #fresh = new Map<string, Entry>();
  /** Bytes of replica files read back for MD5s. */
  hashedBytes = 0;
  /** The server has no `lsetstat@openssh.com` (OpenSSH before 8.0). */
  #noLsetstat = false;

  /**
   * @param options where and how; see {@link SftpReplicaOptions}.
   */
  constructor(options: SftpReplicaOptions) {
    this.where = options.where;
    this.#options = options;
    this.#memory = options.memory ?? new InodeMemory();
    if (options.backupDir !== undefined) {
      this.backups = new SftpBackups({
        link: () => this.#link(),
        root: options.backupDir.path,
        where: options.backupDir.where,
        exec: options.exec,
        replicaPath: (path) => this.#abs(path),
        gone: (path) => {
          this.#memory.forget(path);
          this.#memory.forgetFolder(path);
        },
      });
    }
    // Hard links where a shell tells which names are one file (SFTP does not).
    if (options.exec) this.link = (target, path) => this.#hardLink(target, path);
    const hidden = options.hidden;
    if (hidden !== undefined) {
      this.refuses = (path) =>
        this.#abs(path) === hidden
          ? "on this host that name is the folder of the mirrors' locks"
          : undefined;
    }
  }

  #abs(path: string): string {
    return joinPath(this.#options.root, path);
  }

  /** The program wrote the file at `path`: its next listing is adopted (see {@link InodeMemory}). */
  #wrote(path: string): void {
    if (this.#options.exec) this.#memory.wrote(path);
  }

  #link(): Promise<SshLink> {
    return this.#options.remote.link();
  }

  /** Every write passes the bytes through the program: their MD5 is learnt. */
  learnsMd5(): boolean {
    return true;
  }

  async open(): Promise<RootInfo | undefined> {
    this.close();
    const link = await this.#link();
    let stats;
    try {
      stats = await link.call<{ isDirectory(): boolean; mode: number; mtime: number }>((done) =>
        link.sftp.stat(this.#options.root, done)
      );
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw sftpError(error, "cannot open", this.#options.root);
    }
    if (!stats.isDirectory()) throw new Error(`'${this.#options.root}' is not a folder`);
    if (!this.#options.readBack) await this.#options.beforeCycle?.();
    return {
      entry: {
        kind: "dir",
        size: 0,
        mtimeMs: stats.mtime * 1000,
        ctimeMs: 0,
        ino: 0,
        mode: stats.mode & 0o7777,
      },
      id: this.#options.id,
    };
  }

  /** Read the tree ahead of the walk: one `find` with a shell, else listings of the next folders. */
  readAhead(): void {
    this.#readingAhead = true;
    if (!this.#options.exec) return;
    const tree = this.#findTree();
    tree.catch(() => {}); // a failure: each folder is listed on its own
    this.#tree = tree;
  }

  async #findTree(): Promise<TreeAhead | undefined> {
    const link = await this.#link();
    const root = this.#options.root;
    const result = await link.exec(
      `find ${shellQuote(root)} -mindepth 1 -printf ${shellQuote(`${FIELDS} %P\\0%l\\0`)}`,
    );
    // Anything find could not read (its messages escape odd names): every folder is listed
    // on its own instead, which says what went wrong where.
    if (result.code !== 0) return undefined;
    const folders = new Map<string, Found[]>();
    const listed = new Set<string>([""]);
    for (const found of parseFound(new TextDecoder().decode(result.stdout))) {
      const dir = parentOf(found.path);
      let list = folders.get(dir);
      if (list === undefined) folders.set(dir, list = []);
      list.push(found);
      if (found.kind === "dir") listed.add(found.path);
    }
    return { folders, listed };
  }

  skip(dirs: readonly string[]): void {
    this.#ahead.skip(dirs);
  }

  /** Stop reading ahead; drop what was read ahead. */
  close(): void {
    this.#readingAhead = false;
    this.#tree = undefined;
    this.#ahead.clear();
    this.#hashes.clear();
    this.#fresh.clear();
  }

  async list(dir: string): Promise<Listing> {
    // A walk from the root: the whole tree in one command, whatever its size.
    if (dir === "" && this.#tree === undefined && this.#options.exec) this.readAhead();
    const tree = await this.#tree?.catch(() => undefined);
    if (tree?.listed.delete(dir)) {
      const found = tree.folders.get(dir);
      tree.folders.delete(dir);
      // A folder with nothing in it is no record's parent.
      return this.#listing(dir, found ?? []);
    }
    const listing = await (this.#ahead.take(dir) ?? this.#listFolder(dir));
    if (this.#readingAhead && !this.#options.exec) {
      const below = listing.entries.filter((listed) => listed.entry.kind === "dir");
      this.#ahead.ask(dir, below.map(({ name }) => name), (path) => this.#listFolder(path));
    }
    return listing;
  }

  /** One folder's listing: `find` with a shell, else `readdir`. */
  async #listFolder(dir: string): Promise<Listing> {
    const link = await this.#link();
    const abs = this.#abs(dir);
    if (this.#options.exec) {
      const result = await link.exec(
        `find ${shellQuote(abs)} -mindepth 1 -maxdepth 1 -printf ${
          shellQuote(`${FIELDS} %P\\0%l\\0`)
        }`,
      );
      if (result.code === 0) {
        return this.#listing(dir, parseFound(new TextDecoder().decode(result.stdout)));
      }
      // Gone, or unreadable: readdir says which.
    }
    let list: { filename: string; attrs: { mode: number; size: number; mtime: number } }[];
    try {
      list = await link.call((done) => link.sftp.readdir(abs, done));
    } catch (error) {
      throw sftpError(error, "cannot list", abs);
    }
    const problems: { name: string; error: Error }[] = [];
    const entries = await Promise.all(list.map(async ({ filename, attrs }) => {
      if (filename === "." || filename === "..") return undefined;
      const path = dir === "" ? filename : `${dir}/${filename}`;
      if (this.#abs(path) === this.#options.hidden) return undefined;
      const entry = attributesEntry(attrs);
      if (entry.kind !== "symlink") return { name: filename, entry };
      try {
        const target = await link.call<string>((done) => link.sftp.readlink(this.#abs(path), done));
        return { name: filename, entry: { ...entry, target } };
      } catch (error) {
        if (isMissing(error)) return undefined; // gone since the listing
        problems.push({ name: filename, error: sftpError(error, "cannot read", path) });
        return undefined;
      }
    }));
    return {
      entries: entries.filter((entry) => entry !== undefined).sort((a, b) =>
        compareNames(a.name, b.name)
      ),
      problems,
    };
  }

  /** A folder's listing from `find`'s records (paths below the root, or names). */
  #listing(dir: string, records: readonly Found[]): Listing {
    const entries: Listed[] = [];
    for (const found of records) {
      const name = found.path.slice(found.path.lastIndexOf("/") + 1);
      const path = dir === "" ? name : `${dir}/${name}`;
      if (this.#abs(path) === this.#options.hidden) continue;
      entries.push({ name, entry: this.#entryOf(path, found) });
    }
    return { entries: entries.sort((a, b) => compareNames(a.name, b.name)), problems: [] };
  }

  /** The entry of a `find` record, with the number that stands for its inode. */
  #entryOf(path: string, found: Found): Entry {
    const readBack = this.#options.readBack;
    const entry = {
      kind: found.kind,
      size: found.kind === "dir" ? 0 : found.size,
      mtimeMs: found.mtimeMs,
      ctimeMs: 0,
      // Read back (`--verify`): the inode itself, which tells the names of one file.
      ino: found.kind !== "file"
        ? 0
        : readBack
        ? found.ino
        : this.#memory.identity(path, found.identity),
      mode: found.mode,
      nlink: found.nlink,
    };
    return found.target === undefined ? entry : { ...entry, target: found.target };
  }

  /**
   * The entries at `paths` that exist, with their inodes (one `find` on the
   * host for them all): what names one file, which the stat keys do not say.
   */
  async fileIds(paths: readonly string[]): Promise<Map<string, FileId>> {
    const { byAbs, output } = await this.#overNames(paths, FIND_EACH);
    const ids = new Map<string, FileId>();
    for (const found of parseFound(output)) {
      const path = byAbs.get(found.path);
      if (path !== undefined) ids.set(path, { kind: found.kind, id: found.ino });
    }
    return ids;
  }

  async stat(path: string): Promise<Entry | undefined> {
    const fresh = this.#fresh.get(path);
    if (fresh !== undefined) {
      this.#fresh.delete(path);
      return fresh;
    }
    const link = await this.#link();
    const abs = this.#abs(path);
    if (this.#options.exec) {
      const result = await link.exec(
        `find ${shellQuote(abs)} -maxdepth 0 -printf ${shellQuote(`${FIELDS} %p\\0%l\\0`)}`,
      );
      const [found] = parseFound(new TextDecoder().decode(result.stdout));
      if (found !== undefined) return this.#entryOf(path, found);
      // Gone, or not to be examined: lstat says which.
    }
    try {
      const attrs = await link.call<{ mode: number; size: number; mtime: number }>((done) =>
        link.sftp.lstat(abs, done)
      );
      const entry = attributesEntry(attrs);
      if (entry.kind !== "symlink") return entry;
      return { ...entry, target: await link.call<string>((done) => link.sftp.readlink(abs, done)) };
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw sftpError(error, "cannot examine", abs);
    }
  }

  /**
   * The comparisons of a folder will ask for the MD5s of these files: ask
   * for them all at once (a batch of `md5sum` on the host, or reads in flight).
   *
   * @param files the files' paths and sizes as listed.
   */
  prefetchMd5(files: readonly { readonly path: string; readonly size: number }[]): void {
    const wanted = files.filter((file) => !this.#hashes.has(file.path));
    if (!this.#options.exec) {
      for (const file of wanted) {
        const reading = this.#reading(() => this.#readBack(file.path, file.size))
          .then((md5) => ({ md5 }));
        reading.catch(() => {});
        this.#hashes.set(file.path, reading);
      }
      return;
    }
    for (let at = 0; at < wanted.length; at += HASH_BATCH) {
      const batch = wanted.slice(at, at + HASH_BATCH).map((file) => file.path);
      const hashed = this.#hashOnHost(batch);
      hashed.catch(() => {});
      for (const path of batch) {
        const one = hashed.then((all) => all.get(path) ?? {});
        one.catch(() => {});
        this.#hashes.set(path, one);
      }
    }
  }

  /**
   * MD5s computed on the host, each with the file's entry after: `md5sum`
   * and `find` over names given on standard input (any name, no quoting).
   */
  async #hashOnHost(
    paths: readonly string[],
  ): Promise<Map<string, { md5?: string; entry?: Entry }>> {
    const { byAbs, output } = await this.#overNames(paths, `md5sum -z -- "$@"; ${FIND_EACH}`);
    // xargs may run the script more than once: md5 records and find records (a record and
    // its link target) in turns; each record says which it is.
    const records = output.split("\0");
    const answers = new Map<string, { md5?: string; entry?: Entry }>();
    for (let at = 0; at < records.length; at++) {
      const record = records[at]!;
      if (record === "") continue;
      const md5 = /^([0-9a-f]{32}) [ *](\/.*)$/s.exec(record);
      if (md5 !== null) {
        const path = byAbs.get(md5[2]!);
        if (path !== undefined) answers.set(path, { ...answers.get(path), md5: md5[1]! });
        continue;
      }
      const [found] = parseFound(`${record}\0${records[at + 1] ?? ""}\0`);
      at++; // its link target
      const path = found === undefined ? undefined : byAbs.get(found.path);
      if (path === undefined) continue;
      answers.set(path, { ...answers.get(path), entry: this.#entryOf(path, found!) });
    }
    return answers;
  }

  /**
   * Run `script` on the host over the files at `paths`, its `"$@"` their
   * absolute names, given on standard input through `xargs -0` (any name, no
   * quoting; more than one run for many names).
   *
   * @returns the absolute names (-> each path), and what the script printed.
   */
  async #overNames(
    paths: readonly string[],
    script: string,
  ): Promise<{ byAbs: Map<string, string>; output: string }> {
    const link = await this.#link();
    const byAbs = new Map(paths.map((path) => [this.#abs(path), path]));
    const result = await link.exec(
      `xargs -0 sh -c ${shellQuote(script)} sh`,
      new TextEncoder().encode([...byAbs.keys()].map((abs) => `${abs}\0`).join("")),
    );
    return { byAbs, output: new TextDecoder().decode(result.stdout) };
  }

  async md5(path: string, size: number, signal?: AbortSignal): Promise<string> {
    signal?.throwIfAborted();
    let asked = this.#hashes.get(path);
    this.#hashes.delete(path);
    if (asked === undefined) {
      this.prefetchMd5([{ path, size }]);
      asked = this.#hashes.get(path)!;
      this.#hashes.delete(path);
    }
    const { md5, entry } = await asked;
    if (entry !== undefined) this.#fresh.set(path, entry);
    if (md5 === undefined) throw new Deno.errors.NotFound(`${path}: it could not be hashed`);
    return md5;
  }

  /** The MD5 of a replica file, read back over SFTP (several requests in flight). */
  async #readBack(path: string, size: number): Promise<string> {
    const link = await this.#link();
    const abs = this.#abs(path);
    const hash = createHash("md5");
    let handle: Buffer;
    try {
      handle = await link.call<Buffer>((done) => link.sftp.open(abs, "r", done));
    } catch (error) {
      throw sftpError(error, "cannot read", abs);
    }
    try {
      const read = (position: number) =>
        link.call<Buffer>((done) => {
          const buffer = Buffer.alloc(CHUNK);
          link.sftp.read(handle, buffer, 0, CHUNK, position, (error, got) => {
            // The end of the file is a status of its own (EOF, 1): no bytes.
            if (error && (error as { code?: unknown }).code === 1) {
              done(null, buffer.subarray(0, 0));
            } else done(error, buffer.subarray(0, got));
          });
        });
      let pending: Promise<Buffer>[] = [];
      let next = 0;
      const fill = () => {
        // Up to the listed size and one chunk more: a file that grew shows another stat after.
        while (pending.length < IN_FLIGHT && next <= size) {
          const request = read(next);
          request.catch(() => {}); // awaited in turn
          pending.push(request);
          next += CHUNK;
        }
      };
      fill();
      let position = 0;
      while (pending.length > 0) {
        const chunk = await pending.shift()!;
        if (chunk.length === 0) break;
        hash.update(chunk);
        this.hashedBytes += chunk.length;
        position += chunk.length;
        if (chunk.length < CHUNK) {
          // A server that answers less than asked (OpenSSH before 8.6: 64 KiB): the reads
          // after this one started at the wrong places; read on from where this one ended.
          await Promise.allSettled(pending);
          pending = [];
          next = position;
        }
        fill();
      }
      await Promise.allSettled(pending);
    } finally {
      await link.call((done) => link.sftp.close(handle, done)).catch(() => {});
    }
    return hash.digest("hex");
  }

  async makeRoot(): Promise<void> {
    await makeFolders(await this.#link(), this.#options.root);
  }

  async makeFolder(path: string, mode: number): Promise<void> {
    const link = await this.#link();
    const abs = this.#abs(path);
    try {
      await link.call((done) => link.sftp.mkdir(abs, { mode }, done));
    } catch (error) {
      throw await explained(link, error, "cannot make", abs);
    }
  }

  async writeFile(write: FileWrite, signal?: AbortSignal): Promise<WriteResult> {
    const abs = this.#abs(write.path);
    const temp = joinPath(parentOf(abs) || "/", this.#options.tempName());
    let result: WriteResult;
    // A big file goes to a free upload worker (its cipher on another core), else on this connection.
    const uploader = write.size >= BIG_FILE ? this.#options.uploaders?.() : undefined;
    if (uploader?.available()) {
      result = await uploader.upload(write, abs, temp, signal);
      if (signal?.aborted) {
        // Stopped: the worker went with its upload; its temp file goes now.
        await this.#link().then((link) => link.call((done) => link.sftp.unlink(temp, done)))
          .catch(() => {});
      }
    } else {
      let link: SshLink;
      try {
        signal?.throwIfAborted();
        link = await this.#link();
      } catch (error) {
        if (signal?.aborted) return { status: "skipped", reason: "the run was stopped" };
        const { name, message } = asError(error);
        return { status: "failed", name, message };
      }
      result = await uploadFile(link, write, abs, temp, signal, this.#options.rate);
    }
    if (result.status === "done") this.#wrote(write.path);
    return result;
  }

  writeFiles(writes: readonly FileWrite[]): Promise<WriteResult[]> {
    return Promise.all(writes.map((write) => this.#writing(() => this.writeFile(write))));
  }

  async makeSymlink(
    path: string,
    target: string,
    _owner?: unknown,
    mtimeMs: number = Date.now(),
  ): Promise<undefined> {
    const link = await this.#link();
    const abs = this.#abs(path);
    const temp = joinPath(parentOf(abs) || "/", this.#options.tempName());
    try {
      await link.call((done) => link.sftp.symlink(target, temp, done));
      await link.call((done) => link.sftp.ext_openssh_rename(temp, abs, done));
    } catch (error) {
      await link.call((done) => link.sftp.unlink(temp, done)).catch(() => {});
      throw await explained(link, error, "cannot make the symlink", abs);
    }
    await this.#setTimes(link, abs, "symlink", mtimeMs);
    return undefined;
  }

  /** Set an entry's mtime (and mode), never through a symlink. */
  async #setTimes(
    link: SshLink,
    abs: string,
    kind: "file" | "dir" | "symlink",
    mtimeMs: number | undefined,
    mode?: number,
  ): Promise<void> {
    const seconds = mtimeMs === undefined ? undefined : Math.floor(mtimeMs / 1000);
    const attrs = {
      ...(seconds === undefined ? {} : { atime: seconds, mtime: seconds }),
      ...(mode === undefined ? {} : { mode }),
    };
    try {
      if (!this.#noLsetstat) {
        try {
          return await link.call((done) => link.sftp.ext_openssh_lsetstat(abs, attrs, done));
        } catch (error) {
          // OpenSSH before 8.0 has no lsetstat@openssh.com.
          if (!/does not support/i.test(asError(error).message)) throw error;
          this.#noLsetstat = true;
        }
      }
      // setstat follows a symlink: used for what was just found to be a file or folder only;
      // a symlink keeps the mtime it was made with.
      if (kind !== "symlink") await link.call((done) => link.sftp.setstat(abs, attrs, done));
    } catch (error) {
      throw sftpError(error, "cannot set the attributes of", abs);
    }
  }

  async setAttributes(
    path: string,
    kind: "file" | "dir" | "symlink",
    attributes: Attributes,
  ): Promise<AttributesResult> {
    const link = await this.#link();
    const abs = this.#abs(path);
    const now = await link.call<{ mode: number; size: number; mtime: number }>((done) =>
      link.sftp.lstat(abs, done)
    ).catch((error) => {
      throw sftpError(error, "cannot examine", abs);
    });
    const found = attributesEntry(now);
    if (found.kind !== kind) throw new Error(`'${abs}' is no longer a ${kind}`);
    const mode = kind === "symlink" ? undefined : attributes.mode;
    if (attributes.mtimeMs === undefined && mode === undefined) return {};
    const mtimeMs = attributes.mtimeMs ?? found.mtimeMs;
    await this.#setTimes(link, abs, kind, attributes.mtimeMs, mode);
    if (kind !== "file") return {};
    this.#wrote(path);
    const expected = attributes.expect;
    if (
      expected !== undefined &&
      (expected.size !== found.size ||
        Math.floor(expected.mtimeMs / 1000) !== Math.floor(found.mtimeMs / 1000))
    ) return {};
    return { key: [found.size, Math.floor(mtimeMs / 1000) * 1000, 0, 0] };
  }

  async move(from: string, to: string, kind: "file" | "dir"): Promise<StatKey | undefined> {
    const link = await this.#link();
    try {
      // A plain rename: it fails where something is at `to`.
      await link.call((done) => link.sftp.rename(this.#abs(from), this.#abs(to), done));
    } catch (error) {
      throw sftpError(error, "cannot move", this.#abs(from));
    }
    this.#memory.move(from, to);
    if (kind !== "file") return undefined;
    // A rename changes the file's ctime: its next listing is adopted again.
    this.#wrote(to);
    const moved = await link.call<{ mode: number; size: number; mtime: number }>((done) =>
      link.sftp.lstat(this.#abs(to), done)
    ).catch(() => undefined);
    return moved === undefined ? undefined : [moved.size, moved.mtime * 1000, 0, 0];
  }

  /** Where what a cycle deletes or overwrites is kept (`--backup-dir`), if anywhere. */
  readonly backups?: Backups;

  /**
   * Make the file `path` another name of the file `target`, where a shell is
   * allowed (else each name is a file of its own): `hardlink@openssh.com`
   * to a temp name, renamed over what is at `path`.
   */
  readonly link?: (target: string, path: string) => Promise<StatKey>;

  async #hardLink(target: string, path: string): Promise<StatKey> {
    const link = await this.#link();
    const from = this.#abs(target), abs = this.#abs(path);
    const temp = joinPath(parentOf(abs) || "/", this.#options.tempName());
    try {
      await link.call((done) => link.sftp.ext_openssh_hardlink(from, temp, done));
      await link.call((done) => link.sftp.ext_openssh_rename(temp, abs, done));
    } catch (error) {
      await link.call((done) => link.sftp.unlink(temp, done)).catch(() => {});
      throw await explained(link, error, "cannot link", abs);
    }
    // A rename between two names of one file does nothing: the temp name stays.
    await link.call((done) => link.sftp.unlink(temp, done)).catch(() => {});
    // Both names' ctimes moved: their next listing is adopted.
    this.#wrote(target);
    this.#wrote(path);
    const now = await link.call<{ mode: number; size: number; mtime: number }>((done) =>
      link.sftp.lstat(abs, done)
    ).catch((error) => {
      throw sftpError(error, "cannot examine", abs);
    });
    return [now.size, now.mtime * 1000, 0, 0];
  }

  async remove(path: string, kind: Entry["kind"]): Promise<void> {
    const link = await this.#link();
    const abs = this.#abs(path);
    if (kind === "dir") {
      this.#memory.forgetFolder(path);
      if (this.#options.exec) {
        const result = await link.exec(`rm -rf -- ${shellQuote(abs)}`);
        if (result.code === 0) return;
        throw new Error(`cannot remove '${abs}': ${result.stderr.trim().split("\n")[0]}`);
      }
      return await removeTree(link, abs);
    }
    this.#memory.forget(path);
    try {
      await link.call((done) => link.sftp.unlink(abs, done));
    } catch (error) {
      if (!isMissing(error)) throw sftpError(error, "cannot remove", abs);
    }
  }

  /**
   * Why a source entry cannot be held here: the mirrors' locks folder, when
   * it is inside the replica (only then: a replica that refuses nothing
   * lets the engine move folders whole).
   */
  readonly refuses?: (path: string) => string | undefined;
}

/** An entry from SFTP attributes: whole-second mtime, no inode or ctime. */
function attributesEntry(attrs: { mode: number; size: number; mtime: number }): Entry {
  const type = attrs.mode & 0o170000;
  const kind: Kind = type === 0o100000
    ? "file"
    : type === 0o040000
    ? "dir"
    : type === 0o120000
    ? "symlink"
    : "other";
  return {
    kind,
    size: kind === "dir" ? 0 : attrs.size,
    mtimeMs: attrs.mtime * 1000,
    ctimeMs: 0,
    ino: 0,
    mode: attrs.mode & 0o7777,
  };
}

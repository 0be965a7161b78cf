/**
 * A tree that is a folder on this machine: {@link LocalTree} reads one (the
 * source, or a replica as it is), {@link LocalReplica} also writes one (the
 * replica). Every change goes through the small {@link Disk} interface, so
 * tests can inject faults.
 *
 * Readers of the replica never see a partial file or folder:
 * - a file or symlink is written under a temp name in its own folder and
 *   renamed into place;
 * - a new folder is made under a temp name, filled (its files written
 *   directly, no per-file rename), and renamed into place once
 *   ({@link LocalReplica.beginFolder}).
 *
 * Nothing is written, created, renamed or removed through a symlink in the
 * replica: the folders above each target are checked to be real folders first.
 *
 * The sync file-system calls are used on purpose: they are several times
 * faster than the async ones in Deno (see FACTS.md).
 *
 * @module
 */
import { chownAsAllowed, copyFile, type CopyJob, keepPrefix, removeQuietly } from "./copy.ts";
import { type Copier, CopyWorker } from "./copy_worker.ts";
import { type Disk, pacedDisk, realDisk } from "./disk.ts";
import { LocalBackups } from "./backups.ts";
import {
  type Entry,
  entryFromInfo,
  isSparse,
  keyOf,
  type Owner,
  type StatKey,
  statKey,
} from "../../core/entry.ts";
import { asError, reason } from "../../core/error.ts";
import type { Rate } from "../../core/rate.ts";
import { Hasher } from "../../core/hash.ts";
import { OwnerPolicy } from "../../engine/owners.ts";
import { FolderLister, ListerGone, listingOf, readFolder, subfoldersOf } from "./lister.ts";
import { isBelow, joinPath, parentOf, realPathOf } from "../../core/paths.ts";
import {
  type Attributes,
  type AttributesResult,
  type Backups,
  BIG_FILE,
  type FileWrite,
  type Listing,
  type Replica,
  type RootInfo,
  type TreeReader,
  type WriteResult,
} from "../../core/replica.ts";
import { newRunId, TempNames } from "../../core/temp_names.ts";

/** Options of {@link LocalTree}. */
export interface LocalTreeOptions {
  /**
   * How messages name the folder (the path as the user typed it).
   *
   * @default the root as given
   */
  readonly where?: string;
  /**
   * Reads files for their MD5 (share one to count the bytes read on both
   * sides).
   *
   * @default a new one
   */
  readonly hasher?: Hasher;
  /**
   * The code of the worker that reads folders ahead of a walk (tests give a
   * broken one).
   *
   * @default `lister.ts`'s
   */
  readonly aheadSource?: string;
  /**
   * How long (ms) the thread that reads folders ahead stays when unused: a
   * running mirror keeps it from one cycle to the next (starting it again
   * costs more CPU than an idle cycle's whole walk of a small tree).
   *
   * @default 1000
   */
  readonly readAheadLingerMs?: number;
}

/**
 * A folder on this machine, read folder by folder. The path is kept as given
 * and resolved again at each {@link LocalTree.open}: a root given as a
 * symlink follows it when it is switched.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalTree } from "./local.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/a.txt`, "hi");
 * const tree = new LocalTree(dir);
 * assert.ok(await tree.open());
 * const listing = await tree.list("");
 * assert.deepEqual(listing.entries.map((e) => [e.name, e.entry.size]), [["a.txt", 2]]);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class LocalTree implements TreeReader {
  readonly where: string;
  /** The root as given (absolute or relative to the working folder). */
  protected readonly given: string;
  /** The root's real path, as the last {@link open} found it. */
  protected real: string;
  readonly #hasher: Hasher;
  readonly #lister: FolderLister;
  /** A walk that reads ahead starts at the next listing of the root. */
  #ahead = false;

  /**
   * A folder to read; nothing is read until {@link open}.
   *
   * @param root the folder, as the user gave it.
   * @param options see {@link LocalTreeOptions}.
   */
  constructor(root: string, options: LocalTreeOptions = {}) {
    this.where = options.where ?? root;
    this.given = root;
    this.real = realPathOf(root);
    this.#hasher = options.hasher ?? new Hasher();
    this.#lister = new FolderLister(options.aheadSource, options.readAheadLingerMs);
  }

  /**
   * Where the entry at `path` is read (the root's real path joined with it;
   * a replica reads a folder it is filling where it fills it).
   *
   * @param path the entry's path relative to the root.
   * @returns its absolute path.
   */
  protected located(path: string): string {
    return joinPath(this.real, path);
  }

  /** Bytes of file content read so far for MD5s. */
  get hashedBytes(): number {
    return this.#hasher.hashedBytes;
  }

  /** The root's real path, as the last {@link open} found it (where it
   * would be made, when it was missing). */
  get path(): string {
    return this.real;
  }

  /**
   * Find the root folder now, following a symlink given as the root anew.
   *
   * @returns the root as found now, or undefined when it does not exist.
   * @throws {Error} when it cannot be used (not a folder, a dangling symlink, no access).
   */
  open(): RootInfo | undefined {
    this.#lister.reset(); // what was read ahead may be out of date
    this.#ahead = false;
    let real: string;
    try {
      real = Deno.realPathSync(this.given);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      if (isSymlink(this.given)) throw new Error("a symlink to a folder that does not exist");
      this.real = realPathOf(this.given);
      return undefined;
    }
    const info = Deno.lstatSync(real);
    if (!info.isDirectory) throw new Error("not a folder");
    this.real = real;
    return { entry: entryFromInfo(info), id: `${info.dev}:${info.ino}`, path: real };
  }

  /**
   * The entries of the folder `dir`, sorted by name.
   *
   * @param dir the folder's path relative to the root (`""`: the root).
   * @returns the folder's entries, and the names that could not be examined.
   * @throws {Deno.errors.NotFound} when the folder is gone.
   */
  list(dir: string): Listing | Promise<Listing> {
    const base = this.located(dir);
    if (dir === "" && this.#ahead) {
      // The root is read here; the worker (only started when there are
      // subfolders) reads the rest.
      this.#ahead = false;
      const raw = readFolder(base);
      const below = subfoldersOf(raw);
      if (below.length > 0) this.#lister.start(this.real, below);
      return listingOf(raw);
    }
    const ahead = this.#lister.take(this.real, dir);
    if (ahead === undefined) return listingOf(readFolder(base));
    return ahead.then(listingOf, (error) => {
      if (error instanceof ListerGone) return listingOf(readFolder(base));
      throw error;
    });
  }

  /**
   * Start reading the whole tree on a second thread, ahead of a depth-first
   * walk that lists its folders next.
   */
  readAhead(): void {
    this.#lister.reset();
    this.#ahead = true;
  }

  /**
   * The walk that reads ahead will not list the folders `dirs`, nor anything
   * below them: they need not be read.
   *
   * @param dirs folder paths relative to the root.
   */
  skip(dirs: readonly string[]): void {
    this.#lister.skip(this.real, dirs);
  }

  /** Whether the thread that reads folders ahead runs now (it stays a while unused). */
  get readingAhead(): boolean {
    return this.#lister.running;
  }

  /** Stop the thread that reads folders ahead, if it runs. */
  close(): void {
    this.#lister.close();
  }

  /**
   * The entry at `path` now (a symlink itself, not what it points to).
   *
   * @param path the entry's path relative to the root.
   * @returns the entry, or undefined when there is none.
   */
  stat(path: string): Entry | undefined {
    try {
      return entryFromInfo(Deno.lstatSync(this.located(path)));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  }

  /**
   * The MD5 of the file at `path`, counted in {@link hashedBytes}.
   *
   * @param path the file's path relative to the root.
   * @param size the file's size when it was listed.
   * @param signal stops the reading of a big file early.
   * @returns the file's MD5, in lowercase hex.
   */
  md5(path: string, size: number, signal?: AbortSignal): Promise<string> {
    return this.#hasher.md5(this.located(path), size, signal);
  }
}

function isSymlink(path: string): boolean {
  try {
    return Deno.lstatSync(path).isSymlink;
  } catch {
    return false;
  }
}

/**
 * The program's own names in a replica: this run's temp names, and which
 * names are temp files of this run or of an earlier one (the state file
 * knows those; see `state.ts`).
 */
export interface OwnNames {
  /** This run's temp names. */
  readonly temps: TempNames;
  /**
   * Whether `name` is a temp file of this run or an earlier one.
   *
   * @param name a replica entry's name (not a path).
   * @returns true when it is one of the program's temp files.
   */
  isTemp(name: string): boolean;
}

/** Options of {@link LocalReplica}. */
export interface LocalReplicaOptions extends LocalTreeOptions {
  /**
   * The disk calls every change goes through.
   *
   * @default the real disk (paced by {@link rate}, when given)
   */
  readonly disk?: Disk;
  /**
   * `--bwlimit`: the bytes of every file copied are taken from it first
   * (copied a piece at a time, on the main thread only: see `pacedDisk`).
   * Applies to the real disk (when {@link disk} is not given).
   *
   * @default no limit
   */
  readonly rate?: Rate;
  /**
   * The program's own names.
   *
   * @default those of a new run, none of an earlier one
   */
  readonly names?: OwnNames;
  /**
   * Share the writing of many small files with a second thread.
   *
   * @default `true` on the real disk (the worker writes to it, not through `disk`); never
   * with {@link rate}
   */
  readonly worker?: boolean;
  /**
   * Starts the copy worker (tests give a broken one).
   *
   * @default `copy_worker.ts`'s
   */
  readonly makeWorker?: () => Copier;
  /**
   * Called once if the copy worker cannot start or stops working; from then
   * on its writes are made on the main thread.
   *
   * @default nothing
   */
  readonly onWorkerFailure?: (error: Error) => void;
  /**
   * `--backup-dir`: the backup folder's absolute path, and how messages name it.
   *
   * @default none: what a cycle deletes or overwrites is gone
   */
  readonly backupDir?: { readonly path: string; readonly where: string };
}

/** Batches smaller than this are written on the main thread only. */
const MIN_SHARED_BATCH = 64;
/**
 * The copy worker stops after this long without work (a later batch starts
 * it again): a program that mirrors once exits without having to close the
 * replica, and a loop that sleeps between cycles holds no second thread.
 */
export const WORKER_IDLE_MS = 1000;

/**
 * The replica as a folder on this machine; see the module documentation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalReplica } from "./local.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/from.txt`, "hello");
 * const replica = new LocalReplica(`${dir}/rep`);
 * await replica.makeRoot();
 * const source = Deno.lstatSync(`${dir}/from.txt`);
 * const result = await replica.writeFile({
 *   path: "a.txt", from: `${dir}/from.txt`, size: 5, mtimeMs: source.mtime!.getTime(), mode: 0o644,
 *   expectedKey: `5:${source.mtime!.getTime()}:${source.ctime!.getTime()}:${source.ino}`,
 * });
 * assert.equal(result.status, "done");
 * assert.equal(Deno.readTextFileSync(`${dir}/rep/a.txt`), "hello");
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class LocalReplica extends LocalTree implements Replica {
  readonly #disk: Disk;
  readonly #names: OwnNames;
  /** Folders checked, this cycle, to be real folders (not symlinks). */
  #realDirs: RealDirs;
  /** A new folder being filled out of readers' sight. */
  #staging: { readonly path: string; readonly temp: string } | undefined;
  #useWorker: boolean;
  #worker: Copier | undefined;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** Batches on the worker not answered yet. */
  #onWorker = 0;
  readonly #makeWorker: () => Copier;
  /** Reads the first bytes of sources that grew while copied (made when first needed). */
  #prefixes: Hasher | undefined;
  readonly #onWorkerFailure: (error: Error) => void;

  /**
   * A folder to write; nothing is written until an action asks for it.
   *
   * @param root the folder, as the user gave it (made by {@link makeRoot} if missing).
   * @param options see {@link LocalReplicaOptions}.
   */
  constructor(root: string, options: LocalReplicaOptions = {}) {
    super(root, options);
    this.#disk = options.disk ?? (options.rate ? pacedDisk(options.rate) : realDisk);
    const temps = new TempNames(newRunId());
    this.#names = options.names ?? { temps, isTemp: (name) => temps.isOwn(name) };
    this.#realDirs = new RealDirs(this.real, this.#disk);
    // A paced copy is never the worker's (its kernel copies cannot be paced).
    this.#useWorker = options.rate === undefined && (options.worker ?? this.#disk === realDisk);
    this.#makeWorker = options.makeWorker ?? (() => new CopyWorker());
    this.#onWorkerFailure = options.onWorkerFailure ?? (() => {});
    if (options.backupDir !== undefined) {
      const { path, where } = options.backupDir;
      this.backups = new LocalBackups(path, where, this.#disk, (entry) => this.#target(entry));
    }
  }

  /** Where what a cycle deletes or overwrites is kept (`--backup-dir`), if anywhere. */
  readonly backups?: Backups;

  /**
   * Whether `name` is one of the program's temp files (this run's or an earlier one's).
   *
   * @param name a replica entry's name (not a path).
   * @returns true when it is one of the program's temp files.
   */
  isTemp(name: string): boolean {
    return this.#names.isTemp(name);
  }

  /**
   * Find the root folder now; the folders below it are checked afresh.
   *
   * @returns the root as found now, or undefined when it does not exist.
   * @throws {Error} when it cannot be used (not a folder, a dangling symlink, no access).
   */
  override open(): RootInfo | undefined {
    const found = super.open();
    this.#realDirs = new RealDirs(this.real, this.#disk); // a new cycle checks afresh
    return found;
  }

  /** Make the root folder, with its missing parents. */
  makeRoot(): void {
    this.#disk.mkdir(this.real, true);
  }

  /**
   * Where the entry at `path` is read: a path inside the folder being filled
   * where it is written (a folder moved into a new folder is walked there
   * before the new folder is in place), any other in place.
   *
   * @param path the entry's path relative to the root.
   * @returns its absolute path.
   */
  protected override located(path: string): string {
    const staging = this.#staging;
    return staging && isBelow(path, staging.path)
      ? staging.temp + path.slice(staging.path.length)
      : super.located(path);
  }

  /** Where `path` is written now: inside the folder being filled, or in place. */
  #target(path: string): string {
    if (this.#staged(path)) return this.located(path);
    this.#realDirs.check(parentOf(path));
    return joinPath(this.real, path);
  }

  /** A temp name in the same folder as `target` (absolute). */
  #siblingTemp(target: string): string {
    return `${target.slice(0, target.lastIndexOf("/") + 1)}${this.#names.temps.next()}`;
  }

  /** Whether `path` lies in the folder being filled (written there directly). */
  #staged(path: string): boolean {
    return this.#staging !== undefined && isBelow(path, this.#staging.path);
  }

  /**
   * Make the folder `path` with `mode`.
   *
   * @param path the new folder's path relative to the root.
   * @param mode the new folder's permission bits.
   */
  makeFolder(path: string, mode: number): void {
    const target = this.#target(path);
    this.#disk.mkdir(target, false);
    this.#disk.chmod(target, mode);
  }

  /**
   * Make the new folder `path` under a temp name, to be filled and then
   * put in place by {@link commitFolder}.
   *
   * @param path the new folder's path relative to the root.
   * @param mode the new folder's permission bits.
   */
  beginFolder(path: string, mode: number): void {
    const temp = this.#siblingTemp(this.#target(path));
    this.#disk.mkdir(temp, false);
    this.#disk.chmod(temp, mode);
    this.#staging = { path, temp };
  }

  /**
   * Put the folder begun at `path` in place (removed if that fails).
   *
   * @param path the folder's path, as given to {@link beginFolder}.
   * @throws {Error} when no folder `path` is being filled, or it cannot be put in place.
   */
  commitFolder(path: string): void {
    const staging = this.#staging;
    if (staging?.path !== path) throw new Error(`no folder ${path} is being filled`);
    this.#staging = undefined;
    try {
      this.#disk.rename(staging.temp, joinPath(this.real, path));
    } catch (error) {
      removeQuietly(this.#disk, staging.temp, true);
      throw error;
    }
  }

  /**
   * Remove the folder begun at `path` and all written into it.
   *
   * @param path the folder's path, as given to {@link beginFolder}.
   */
  dropFolder(path: string): void {
    const staging = this.#staging;
    if (staging?.path !== path) return;
    this.#staging = undefined;
    removeQuietly(this.#disk, staging.temp, true);
  }

  /**
   * Write one file, atomically, from a source file.
   *
   * @param write the file to write and where.
   * @param signal stops the write early (its partial copy is removed at once).
   * @returns how the write ended (a promise while a big file is copied in the background).
   */
  writeFile(write: FileWrite, signal?: AbortSignal): WriteResult | Promise<WriteResult> {
    let job: CopyJob;
    try {
      job = this.#job(write);
    } catch (error) {
      return failed(error);
    }
    const copying = this.#settled(job, copyFile(this.#disk, job, signal));
    if (!(copying instanceof Promise) || signal === undefined) return copying;
    // A kernel copy of gigabytes cannot be interrupted: on a stop its file is
    // removed at once, and the copy goes on into nothing until the process ends.
    return new Promise((resolve) => {
      const stop = () => {
        removeQuietly(this.#disk, job.dest);
        resolve({ status: "skipped", reason: "the run was stopped" });
      };
      if (signal.aborted) return stop();
      signal.addEventListener("abort", stop, { once: true });
      copying.then((result) => {
        signal.removeEventListener("abort", stop);
        resolve(result);
      });
    });
  }

  /** The copy of one file: directly inside a folder being filled, else under a
   * temp name renamed over the target. */
  #job(write: FileWrite): CopyJob {
    const direct = this.#staged(write.path);
    const target = this.#target(write.path);
    return {
      from: write.from,
      dest: direct ? target : this.#siblingTemp(target),
      ...(direct ? {} : { target }),
      size: write.size,
      mtimeMs: write.mtimeMs,
      mode: write.mode,
      expectedKey: write.expectedKey,
      ...(write.sparse ? { sparse: true } : {}),
      ...(write.owner ? { owner: write.owner } : {}),
    };
  }

  /**
   * Write many small files, half of a big batch on the copy worker's thread.
   *
   * @param writes the files to write.
   * @returns how each write ended, in the order of `writes`.
   */
  async writeFiles(writes: readonly FileWrite[]): Promise<WriteResult[]> {
    const jobs: (CopyJob | WriteResult)[] = writes.map((write) => {
      try {
        return this.#job(write);
      } catch (error) {
        return failed(error);
      }
    });
    const runnable = jobs.filter((job): job is CopyJob => "dest" in job);
    // Half of a big enough batch goes to the worker, which copies on the second core.
    const share = this.#useWorker && runnable.length >= MIN_SHARED_BATCH ? runnable.length >> 1 : 0;
    const sent = share > 0
      ? this.#copier().copy(runnable.slice(runnable.length - share)).finally(() => this.#idle())
      : undefined;
    // Small copies end at once; a paced disk's wait for their bytes.
    const results = runnable.slice(0, runnable.length - share).map((job) =>
      copyFile(this.#disk, job)
    );
    if (sent) {
      results.push(
        ...await sent.catch((error) => {
          // The worker is gone: from now on every copy is made here.
          this.#useWorker = false;
          this.#onWorkerFailure(asError(error));
          return runnable.slice(runnable.length - share).map((job) => copyFile(this.#disk, job));
        }),
      );
    }
    let next = 0;
    return await Promise.all(
      jobs.map((job) => ("dest" in job ? this.#settled(job, results[next++]!) : job)),
    );
  }

  /**
   * A copy whose source grew meanwhile (a log appended to) is kept as what
   * the source held when listed, once its bytes are proven unchanged (see
   * `keepPrefix`).
   */
  #settled(job: CopyJob, result: WriteResult | Promise<WriteResult>) {
    const settle = (result: WriteResult) =>
      result.status === "skipped" && result.grew
        ? keepPrefix(
          this.#disk,
          job,
          (path, length) => (this.#prefixes ??= new Hasher()).md5(path, length, undefined, length),
        )
        : result;
    return result instanceof Promise ? result.then(settle) : settle(result);
  }

  #copier(): Copier {
    clearTimeout(this.#idleTimer);
    this.#onWorker++;
    return this.#worker ??= this.#makeWorker();
  }

  /** A worker left running keeps the process alive: it stops when unused for a while. */
  #idle(): void {
    if (--this.#onWorker > 0) return;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => this.#stopCopier(), WORKER_IDLE_MS);
  }

  /**
   * Make (or replace, atomically) the symlink `path` with the text `target`.
   *
   * @param path the symlink's path relative to the root.
   * @param target the symlink's text.
   * @param owner the owner to give it, where allowed.
   * @param mtimeMs the symlink's own mtime (default: now).
   * @returns the part of the owner that was refused, or undefined when none was.
   */
  async makeSymlink(
    path: string,
    target: string,
    owner?: Owner,
    mtimeMs?: number,
  ): Promise<Owner | undefined> {
    const at = this.#target(path);
    if (this.#staged(path)) {
      this.#disk.symlink(target, at);
      if (mtimeMs !== undefined) await this.#disk.lutime(at, new Date(mtimeMs));
    } else {
      const temp = this.#siblingTemp(at);
      try {
        this.#disk.symlink(target, temp);
        if (mtimeMs !== undefined) await this.#disk.lutime(temp, new Date(mtimeMs));
        this.#disk.rename(temp, at);
      } catch (error) {
        removeQuietly(this.#disk, temp);
        throw error;
      }
    }
    return owner === undefined ? undefined : await this.#lchown(at, owner);
  }

  /**
   * Set attributes of the entry `path` of `kind`, never through a symlink.
   *
   * @param path the entry's path relative to the root.
   * @param kind what the entry is expected to be.
   * @param attributes what to change; see {@link Attributes}.
   * @returns the entry's stat key after the change and the part of the owner refused.
   * @throws {Error} when the entry is not of `kind`, or a change fails.
   */
  async setAttributes(
    path: string,
    kind: "file" | "dir" | "symlink",
    attributes: Attributes,
  ): Promise<AttributesResult> {
    const target = this.#target(path);
    if (kind === "symlink") {
      const refused = attributes.owner ? await this.#lchown(target, attributes.owner) : undefined;
      // A change of owner does not touch the mtime: set it last all the same.
      if (attributes.mtimeMs !== undefined) {
        await this.#disk.lutime(target, new Date(attributes.mtimeMs));
      }
      return refused ? { ownerRefused: refused } : {};
    }
    // chmod, utime and chown follow symlinks: check the target itself first.
    const info = expectKind(this.#disk, target, kind, "the replica entry");
    // A file changed since it was compared gets its attributes, but no key vouched for.
    const expected = attributes.expect === undefined ||
      statKey(attributes.expect) === statKey(entryFromInfo(info));
    const refused = attributes.owner
      ? chownAsAllowed(this.#disk, target, attributes.owner)
      : undefined;
    if (attributes.mode !== undefined) this.#disk.chmod(target, attributes.mode);
    if (attributes.mtimeMs !== undefined) {
      this.#disk.utime(target, new Date(), new Date(attributes.mtimeMs));
    }
    const key = kind === "file" && expected
      ? keyOf(entryFromInfo(this.#disk.lstat(target)))
      : undefined;
    return { ...(key ? { key } : {}), ...(refused ? { ownerRefused: refused } : {}) };
  }

  /** Give the symlink at `target` (absolute) an owner; returns what was refused. */
  async #lchown(target: string, owner: Owner): Promise<Owner | undefined> {
    try {
      await this.#disk.lchown(target, owner.uid ?? null, owner.gid ?? null);
      return undefined;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) throw error;
      return owner; // EPERM, or EINVAL for an id a user namespace does not map
    }
  }

  /**
   * Move the entry `from` to `to` (one rename, within the replica): the
   * folders above both are checked to be real folders, and nothing may be at
   * `to` already.
   *
   * @param from the entry's path relative to the root.
   * @param to its new path.
   * @param kind what it is.
   * @returns the stat key of a file at its new path.
   * @throws {Error} when something is at `to`, or `from` is not of `kind`.
   */
  move(from: string, to: string, kind: "file" | "dir"): StatKey | undefined {
    const source = this.#target(from), target = this.#target(to);
    expectKind(this.#disk, source, kind, "the replica entry");
    try {
      this.#disk.lstat(target);
      throw new Deno.errors.AlreadyExists(`${to} exists already`);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    this.#disk.rename(source, target);
    if (kind === "dir") this.#realDirs.forget(from);
    return kind === "file" ? keyOf(entryFromInfo(this.#disk.lstat(target))) : undefined;
  }

  /**
   * Make the file `path` another name of the file `target` (a hard link):
   * linked under a temporary name, then renamed over what is at `path`.
   *
   * @param target the file's path relative to the root.
   * @param path the name to make.
   * @returns the file's stat key now.
   * @throws {Error} when `target` is not a file, or the link cannot be made.
   */
  link(target: string, path: string): StatKey {
    const from = this.#target(target), at = this.#target(path);
    const info = expectKind(this.#disk, from, "file", "the replica file");
    let there: Deno.FileInfo | undefined;
    try {
      there = this.#disk.lstat(at);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    // A name of the file already (a rename between two names of one file does nothing).
    if (there?.ino === info.ino && there?.isFile) return keyOf(entryFromInfo(info));
    const temp = this.#siblingTemp(at);
    try {
      this.#disk.link(from, temp);
      this.#disk.rename(temp, at);
    } catch (error) {
      removeQuietly(this.#disk, temp);
      throw error;
    }
    return keyOf(entryFromInfo(this.#disk.lstat(at)));
  }

  /**
   * Remove the entry `path` (a folder with all it holds); gone already is fine.
   *
   * @param path the entry's path relative to the root.
   * @param kind what the entry is.
   * @throws {Error} when it cannot be removed, naming what inside a folder stops it.
   */
  remove(path: string, kind: Entry["kind"]): void {
    const target = this.#target(path);
    try {
      this.#disk.remove(target, kind === "dir");
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      if (kind !== "dir") throw error;
      // Say which entry inside stops it (a folder that cannot be read or emptied).
      const blocker = blockerIn(this.#disk, target);
      if (blocker === undefined) throw error;
      throw new Error(`${reason(asError(error))}: ${path}/${blocker} cannot be removed`);
    } finally {
      this.#realDirs.forget(path);
    }
  }

  /**
   * The user and group of an entry made in the root (one temp file is made
   * and removed).
   *
   * @returns the user and group ids, or undefined when finding out failed.
   */
  probeOwner(): { uid: number; gid: number } | undefined {
    return OwnerPolicy.probe(this.real, this.#names.temps.next());
  }

  /**
   * Whether the copy of `entry` reads its bytes through the program (a big
   * sparse file is copied so, skipping its holes), learning its MD5.
   *
   * @param entry the source file as listed.
   * @returns true for a big sparse file.
   */
  learnsMd5(entry: Entry): boolean {
    return entry.size >= BIG_FILE && isSparse(entry);
  }

  /** Stop the worker threads, if any was started. */
  override close(): void {
    super.close();
    this.#stopCopier();
  }

  #stopCopier(): void {
    clearTimeout(this.#idleTimer);
    this.#worker?.close();
    this.#worker = undefined;
  }
}

function failed(error: unknown): WriteResult {
  const { name, message } = asError(error);
  return { status: "failed", name, message };
}

/**
 * Replica folders checked, during one cycle, to be real folders rather than
 * symlinks (a hostile or careless replica may hold a symlink to elsewhere).
 */
class RealDirs {
  readonly #root: string;
  readonly #disk: Disk;
  readonly #verified = new Set<string>([""]);

  constructor(root: string, disk: Disk) {
    this.#root = root;
    this.#disk = disk;
  }

  /** Throw unless `dir` and every folder above it are real folders. */
  check(dir: string): void {
    const unchecked: string[] = [];
    for (let d = dir; !this.#verified.has(d); d = parentOf(d)) unchecked.push(d);
    for (const d of unchecked.reverse()) {
      expectKind(this.#disk, joinPath(this.#root, d), "dir", `replica folder '${d}'`);
      this.#verified.add(d);
    }
  }

  /** `dir` was removed. */
  forget(dir: string): void {
    this.#verified.delete(dir);
  }
}

/**
 * The folder below `root` (relative to it) that stopped a recursive removal:
 * first one that cannot be listed (at any depth); else one that still holds
 * entries and whose owner may not write in it (its entries cannot be
 * removed). A removal stops at its first error, so mere leftovers beside the
 * culprit are not blamed. Undefined when none is found below `root`.
 */
function blockerIn(disk: Pick<Disk, "lstat">, root: string): string | undefined {
  const folders: string[] = [];
  const unlistable = (at: string): string | undefined => {
    let names: string[];
    try {
      names = [...Deno.readDirSync(joinPath(root, at))].map((entry) => entry.name).sort();
    } catch {
      return at === "" ? undefined : at;
    }
    if (at !== "" && names.length > 0) folders.push(at);
    for (const name of names) {
      const path = at === "" ? name : `${at}/${name}`;
      try {
        if (!disk.lstat(joinPath(root, path)).isDirectory) continue;
      } catch {
        continue; // gone meanwhile
      }
      const found = unlistable(path);
      if (found !== undefined) return found;
    }
    return undefined;
  };
  return unlistable("") ?? folders.find((path) => {
    try {
      return (disk.lstat(joinPath(root, path)).mode! & 0o200) === 0;
    } catch {
      return false;
    }
  });
}

/** Throw unless `path` is (not links to) a file or folder, as `kind` says; its info. */
function expectKind(disk: Disk, path: string, kind: "file" | "dir", what: string): Deno.FileInfo {
  const info = disk.lstat(path);
  if (kind === "dir" ? !info.isDirectory : !info.isFile) {
    const actual = info.isSymlink ? "a symlink" : "not a " + (kind === "dir" ? "folder" : "file");
    throw new Error(`${what} is ${actual}; nothing is written through it`);
  }
  return info;
}

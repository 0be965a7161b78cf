/**
 * Carry out a plan on the disk. Each action ends in an {@link Outcome}; a
 * failure is data, never an exception that stops the rest.
 *
 * Readers of the replica never see a partial file or folder:
 * - a file or symlink is written under a temp name in its own folder and
 *   renamed into place;
 * - a new folder is created under a temp name, filled (its files written
 *   directly, no per-file rename), and renamed into place once. The plan lists
 *   a folder's whole subtree right after it, so one folder is filled at a time.
 *
 * Nothing is written, created, renamed or removed through a symlink in the
 * replica: the folders above each target are checked to be real folders first.
 *
 * @module
 */
import {
  type Entry,
  entryFromInfo,
  isSparse,
  keyOf,
  type Roots,
  type StatKey,
  statKey,
} from "./entry.ts";
import { newRunId, TempNames } from "./temp_names.ts";

export type { Roots };
import { chownAsAllowed, copyFile, type CopyJob, type CopyResult, removeQuietly } from "./copy.ts";
import { type Copier, CopyWorker } from "./copy_worker.ts";
import { BIG_FILE, type Disk } from "./disk.ts";
import { asError, reason } from "./error.ts";
import { pacer } from "./pace.ts";
import { type Action, type Owner, ownerChange } from "./plan.ts";
import type { OwnerPolicy } from "./owners.ts";
import { hasAncestorIn, isBelow, joinPath, parentOf } from "./paths.ts";

/** How one action ended. */
export type Outcome =
  /** Done; `bytes` of file content copied. For a file copied or touched,
   * `replicaKey` is the replica file's stat key as the mirror left it.
   * `quiet`: nothing worth a log line changed (a folder's mtime put back after
   * this cycle's own writes in it, an owner change that was not allowed). */
  | {
    readonly status: "done";
    readonly action: Action;
    readonly bytes: number;
    readonly replicaKey?: StatKey;
    readonly quiet?: boolean;
  }
  /** Not done, for a reason that the next cycle resolves (the source moved on). */
  | { readonly status: "skipped"; readonly action: Action; readonly reason: string }
  /** Failed. */
  | { readonly status: "failed"; readonly action: Action; readonly error: Error }
  /** Not attempted: a dry run. */
  | { readonly status: "planned"; readonly action: Action };

/** Options of {@link applyPlan}. */
export interface ApplyOptions {
  /** The disk to act on. */
  readonly disk: Disk;
  /** When aborted, no further action starts; a folder being filled is still
   * moved into place. Default: never. */
  readonly signal?: AbortSignal;
  /** Called with each outcome once it is final (for a new folder's contents:
   * once the folder is in place). Default: nothing. */
  readonly onOutcome?: (outcome: Outcome) => void;
  /** Big-file copies running at once. Default 4. */
  readonly parallelCopies?: number;
  /** Share the copying of many small files (at least {@link MIN_WORKER_COPIES})
   * with a worker thread (real disk only: the worker does not use `disk`).
   * Default `false`. */
  readonly copyWorker?: boolean;
  /** Called once if the copy worker cannot start or stops working; its
   * copies, and all later ones, are then made on the main thread. Default:
   * nothing. */
  readonly onWorkerFailure?: (error: Error) => void;
  /** Starts the copy worker. Default: the one of `copy_worker.ts`. */
  readonly makeWorker?: () => Copier;
  /** Names for temp files and folders. Default: names of a new random run id. */
  readonly temps?: TempNames;
  /** Owners to give what is made or changed (learns refusals). Default: owners
   * are left alone. */
  readonly owners?: OwnerPolicy;
  /** Touch nothing: every action ends as `planned`. Default `false`. */
  readonly dryRun?: boolean;
  /** Called as each file copy ends (done or not), with its size, even while
   * its outcome is held back until its folder is in place. Default: nothing. */
  readonly onCopyEnded?: (bytes: number) => void;
}

/** Small copies queued before they are shared with the worker. */
const MAX_BATCH = 256;
/** Fewer queued copies than this are not worth a trip to the worker. */
const MIN_SHARED_BATCH = 64;
/**
 * A plan with fewer small copies than this does not start the worker: starting
 * one costs ~20 ms of CPU, more than it saves on a few hundred files
 * (measured: 200 copies took 59 ms with it, 42 ms without).
 */
export const MIN_WORKER_COPIES = 1000;

/**
 * Apply `actions` in order. Actions under a folder that could not be created
 * are not attempted (the folder's own failure already reports it).
 */
export async function applyPlan(
  actions: readonly Action[],
  roots: Roots,
  options: ApplyOptions,
): Promise<Outcome[]> {
  if (options.dryRun) {
    // The one place that knows about dry runs: nothing below is reached.
    const planned = actions.map((action): Outcome => ({ status: "planned", action }));
    planned.forEach((outcome) => options.onOutcome?.(outcome));
    return planned;
  }
  const smallCopies =
    actions.filter((action) => action.op === "copy" && action.source.size < BIG_FILE).length;
  const copyWorker = (options.copyWorker ?? false) && smallCopies >= MIN_WORKER_COPIES;
  const applier = new Applier(roots, { ...options, copyWorker });
  const pace = pacer();
  for (const action of actions) {
    if (options.signal?.aborted) break;
    await applier.apply(action);
    await pace();
  }
  await applier.finish();
  return applier.outcomes;
}

/** A new folder being filled under a temp name. */
interface Staging {
  /** The folder's path in the replica. */
  readonly path: string;
  /** Where it is filled (absolute). */
  readonly temp: string;
  /** Outcomes held back until the folder is in place. */
  readonly outcomes: Outcome[];
}

/** A copy with what is needed to report it. */
interface QueuedCopy {
  readonly action: Extract<Action, { op: "copy" }>;
  readonly job: CopyJob;
  readonly staging: Staging | undefined;
}

class Applier {
  readonly outcomes: Outcome[] = [];
  readonly #roots: Roots;
  readonly #disk: Disk;
  readonly #onOutcome: (outcome: Outcome) => void;
  readonly #onCopyEnded: (bytes: number) => void;
  readonly #parallel: number;
  readonly #failedDirs = new Set<string>();
  readonly #realDirs: RealDirs;
  /** Big copies under way in the background, with what they write. */
  readonly #running = new Map<Promise<void>, QueuedCopy>();
  readonly #onWorkerFailure: (error: Error) => void;
  readonly #signal: AbortSignal | undefined;
  /** Settles when the signal aborts. */
  readonly #aborted: Promise<void>;
  /** Copies given up when the run was stopped (their files removed). */
  readonly #abandoned = new Set<QueuedCopy>();
  readonly #abandonedStagings = new Set<Staging>();
  readonly #temps: TempNames;
  readonly #owners: OwnerPolicy | undefined;
  #useWorker: boolean;
  #queued: QueuedCopy[] = [];
  #failed: QueuedCopy[] = [];
  #worker: Copier | undefined;
  readonly #makeWorker: () => Copier;
  #staging: Staging | undefined;

  constructor(roots: Roots, options: ApplyOptions) {
    this.#roots = roots;
    this.#disk = options.disk;
    this.#onOutcome = options.onOutcome ?? (() => {});
    this.#onCopyEnded = options.onCopyEnded ?? (() => {});
    this.#parallel = options.parallelCopies ?? 4;
    this.#useWorker = options.copyWorker ?? false;
    this.#onWorkerFailure = options.onWorkerFailure ?? (() => {});
    this.#makeWorker = options.makeWorker ?? (() => new CopyWorker());
    this.#temps = options.temps ?? new TempNames(newRunId());
    this.#owners = options.owners;
    this.#realDirs = new RealDirs(roots.replica, options.disk);
    this.#signal = options.signal;
    this.#aborted = new Promise((resolve) => {
      if (options.signal?.aborted) resolve();
      options.signal?.addEventListener("abort", () => resolve(), { once: true });
    });
  }

  async apply(action: Action): Promise<void> {
    if (this.#failedDirs.has(action.path) || hasAncestorIn(action.path, this.#failedDirs)) return;
    if (action.op === "keep") { // nothing to do on the disk; reported
      this.#record(
        action.blocks === undefined
          ? done(action)
          : { status: "skipped", action, reason: "it holds excluded entries" },
        undefined,
      );
      return;
    }
    if (this.#staging && !isBelow(action.path, this.#staging.path)) await this.#closeStaging();
    if (action.op === "folder" && !action.opening) { // folder attributes come after all writes
      await this.#closeStaging();
      await this.#drain();
      await this.#retryFailed(undefined);
    }
    const staging = this.#staging;
    const target = staging
      ? staging.temp + action.path.slice(staging.path.length)
      : joinPath(this.#roots.replica, action.path);
    try {
      if (!staging) this.#realDirs.check(parentOf(action.path));
      if (action.op === "copy") {
        const job = this.#copyJob(action, target, staging !== undefined);
        if (action.source.size >= BIG_FILE) {
          const copying = Promise.resolve(copyFile(this.#disk, job));
          const copy = { action, job, staging };
          await this.#startInBackground(copying.then((result) => this.#settle(copy, result)), copy);
        } else if (this.#useWorker) {
          this.#queued.push({ action, job, staging });
          if (this.#queued.length >= MAX_BATCH) await this.#flushCopies();
        } else {
          this.#settle({ action, job, staging }, copyFile(this.#disk, job) as CopyResult);
        }
        return;
      }
      const result = this.#applySimple(action, target, staging);
      let quiet = result?.quiet ?? false;
      if (action.op === "symlink" || action.op === "lchown") {
        const owned = await this.#ownSymlink(
          action,
          staging ? target : joinPath(this.#roots.replica, action.path),
        );
        if (action.op === "lchown") quiet = !owned; // reported only when it changed something
      }
      this.#record(
        quiet ? { status: "done", action, bytes: 0, quiet: true } : done(action, 0, result?.key),
        this.#staging,
      );
    } catch (error) {
      if (action.op === "mkdir") this.#failedDirs.add(action.path);
      this.#record({ status: "failed", action, error: asError(error) }, staging);
    }
  }

  /** Wait for every copy, move a folder being filled into place, stop the worker. */
  async finish(): Promise<void> {
    await this.#closeStaging();
    await this.#drain();
    await this.#retryFailed(undefined);
    this.#worker?.close();
  }

  /**
   * Record how a copy ended, except a failure: copies run side by side, and
   * one may fail only because of another (two big files filling a disk that
   * holds either). Failures are tried once more, alone, before the folder they
   * are in is finished.
   */
  #settle(copy: QueuedCopy, result: CopyResult): void {
    if (this.#abandoned.has(copy)) return; // given up when the run stopped
    if (result.status === "done" && result.ownerRefused) this.#owners?.refused(result.ownerRefused);
    if (result.status === "failed") {
      this.#failed.push(copy);
      return;
    }
    this.#onCopyEnded(copy.action.source.size);
    this.#record(toOutcome(copy.action, result), copy.staging);
  }

  /** Retry, one at a time, the failed copies that belong to `staging`. */
  async #retryFailed(staging: Staging | undefined): Promise<void> {
    const retry = this.#failed.filter((copy) => copy.staging === staging);
    if (retry.length === 0 || this.#signal?.aborted) return;
    this.#failed = this.#failed.filter((copy) => copy.staging !== staging);
    for (const { action, job } of retry) {
      const result = await copyFile(this.#disk, job);
      this.#onCopyEnded(action.source.size);
      this.#record(toOutcome(action, result), staging);
    }
  }

  /** Carry out one action other than a copy; for a touch, returns the file's
   * new key; `quiet` when nothing worth a log line changed. */
  #applySimple(
    action: Exclude<Action, { op: "copy" | "keep" }>,
    target: string,
    staging?: Staging,
  ): { key?: StatKey; quiet?: boolean } | undefined {
    const disk = this.#disk;
    switch (action.op) {
      case "remove":
        try {
          disk.remove(target, action.kind === "dir");
        } catch (error) {
          if (error instanceof Deno.errors.NotFound) return;
          if (action.kind !== "dir") throw error;
          // Say which entry inside stops it (a folder that cannot be read or emptied).
          const blocker = blockerIn(disk, target);
          if (blocker === undefined) throw error;
          throw new Error(`${reason(asError(error))}: ${action.path}/${blocker} cannot be removed`);
        } finally {
          this.#realDirs.forget(action.path);
        }
        return;
      case "mkdir":
        if (staging) {
          disk.mkdir(target, false);
          disk.chmod(target, action.mode);
        } else {
          const temp = this.#siblingTemp(target);
          disk.mkdir(temp, false);
          disk.chmod(temp, action.mode);
          this.#staging = { path: action.path, temp, outcomes: [] };
        }
        return;
      case "folder": {
        // chmod, utime and chown follow symlinks: check the target itself first.
        expectKind(disk, target, "dir", "the replica entry");
        if (action.opening) {
          disk.chmod(target, action.mode);
          return { quiet: true };
        }
        const owned = this.#chown(target, action.owner);
        try {
          disk.chmod(target, action.mode);
          disk.utime(target, new Date(), new Date(action.mtimeMs));
        } catch (error) {
          // The replica folder itself may belong to someone else (a shared
          // folder the mirror may write in): its attributes are not ours to set.
          if (action.path === "" && error instanceof Deno.errors.PermissionDenied) {
            return { quiet: true };
          }
          throw error;
        }
        return { quiet: action.quiet || (action.ownerOnly === true && !owned) };
      }
      case "touch": {
        expectKind(disk, target, "file", "the replica entry");
        // The content was compared as scanned: a file changed since then
        // keeps its attributes set, but its new key is not vouched for.
        const scanned = statKey(action.replica) === statKey(entryFromInfo(disk.lstat(target)));
        const owned = this.#chown(target, action.owner);
        disk.chmod(target, action.source.mode);
        disk.utime(target, new Date(), new Date(action.source.mtimeMs));
        const key = scanned ? keyOf(entryFromInfo(disk.lstat(target))) : undefined;
        const ownerOnly = action.replica.mode === action.source.mode &&
          action.replica.mtimeMs === action.source.mtimeMs;
        return { ...(key ? { key } : {}), quiet: ownerOnly && !owned };
      }
      case "lchown":
        return undefined; // done by #ownSymlink
      case "symlink":
        if (staging) {
          disk.symlink(action.target, target);
        } else {
          const temp = this.#siblingTemp(target);
          try {
            disk.symlink(action.target, temp);
            disk.rename(temp, target);
          } catch (error) {
            removeQuietly(disk, temp);
            throw error;
          }
        }
        return;
    }
  }

  /**
   * Give `path` (a file or folder) the owner `change` says; a refusal (not
   * root, not in that group) is no failure: it is remembered and not asked
   * again. Returns whether the owner was changed.
   */
  #chown(path: string, change: Owner | undefined): boolean {
    if (change === undefined || this.#owners === undefined) return false;
    const refused = chownAsAllowed(this.#disk, path, change);
    if (refused) this.#owners.refused(refused);
    return (change.uid !== undefined && refused?.uid === undefined) ||
      (change.gid !== undefined && refused?.gid === undefined);
  }

  /** Give a symlink made (or found) at `path` its source's owner, where allowed. */
  async #ownSymlink(
    action: Extract<Action, { op: "symlink" | "lchown" }>,
    path: string,
  ): Promise<boolean> {
    const owners = this.#owners;
    if (owners === undefined) return false;
    const change = action.op === "lchown" ? action.owner : ownerChange(
      { kind: "symlink", size: 0, mtimeMs: 0, ctimeMs: 0, ino: 0, mode: 0, ...action },
      undefined,
      owners,
    );
    if (change === undefined) return false;
    try {
      await this.#disk.lchown(path, change.uid ?? null, change.gid ?? null);
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) throw error;
      owners.refused(change); // EPERM, or EINVAL for an id a user namespace does not map
      return false;
    }
  }

  /** The copy of one file as a job: to `target` directly inside a folder being
   * filled, else to a temp name renamed over `target`. */
  #copyJob(action: Extract<Action, { op: "copy" }>, target: string, direct: boolean): CopyJob {
    return {
      from: joinPath(this.#roots.source, action.path),
      dest: direct ? target : this.#siblingTemp(target),
      ...(direct ? {} : { target }),
      size: action.source.size,
      mtimeMs: action.source.mtimeMs,
      mode: action.source.mode,
      expectedKey: statKey(action.source),
      ...(action.source.size >= BIG_FILE && isSparse(action.source) ? { sparse: true } : {}),
      ...this.#ownerOfNew(action.source),
    };
  }

  /** The owner change a new copy of `source` needs, as a job's field. */
  #ownerOfNew(source: Entry): { owner?: Owner } {
    const owner = ownerChange(source, undefined, this.#owners);
    return owner === undefined ? {} : { owner };
  }

  /** Copy the queued small files, half of them in the worker when it pays. */
  async #flushCopies(): Promise<void> {
    const batch = this.#queued;
    if (batch.length === 0) return;
    this.#queued = [];
    const jobs = batch.map((item) => item.job);
    const shared = this.#useWorker && batch.length >= MIN_SHARED_BATCH;
    const half = shared ? batch.length >> 1 : batch.length;
    const sent = half < batch.length ? this.#copier().copy(jobs.slice(half)) : undefined;
    const results = localCopies(this.#disk, jobs.slice(0, half));
    if (sent) {
      results.push(...await sent.catch((error) => this.#workerFailed(error, jobs.slice(half))));
    }
    batch.forEach((copy, i) => this.#settle(copy, results[i]!));
  }

  /** Stop sharing copies with the worker; make its batch here instead. */
  #workerFailed(error: unknown, jobs: readonly CopyJob[]): CopyResult[] {
    this.#useWorker = false;
    this.#onWorkerFailure(asError(error));
    return localCopies(this.#disk, jobs);
  }

  /** A temp name in the same folder as `path` (absolute). */
  #siblingTemp(path: string): string {
    return `${path.slice(0, path.lastIndexOf("/") + 1)}${this.#temps.next()}`;
  }

  #copier(): Copier {
    return this.#worker ??= this.#makeWorker();
  }

  #record(outcome: Outcome, staging: Staging | undefined): void {
    if (staging) {
      staging.outcomes.push(outcome);
    } else {
      this.outcomes.push(outcome);
      this.#onOutcome(outcome);
    }
  }

  async #startInBackground(work: Promise<void>, copy: QueuedCopy): Promise<void> {
    const running = work.finally(() => this.#running.delete(running));
    this.#running.set(running, copy);
    if (this.#running.size >= this.#parallel) await this.#nextEnded();
  }

  /** Wait until a big copy under way ends, or the run is stopped (then give them up). */
  async #nextEnded(): Promise<void> {
    await Promise.race([...this.#running.keys(), this.#aborted]);
    if (this.#signal?.aborted) this.#abandon();
  }

  /**
   * Stopped: give up the big copies under way instead of waiting for them
   * (a kernel copy of gigabytes cannot be interrupted): their files are
   * removed now, the copy goes on into nothing until the process ends.
   */
  #abandon(): void {
    for (const copy of this.#running.values()) {
      this.#abandoned.add(copy);
      removeQuietly(this.#disk, copy.job.dest);
      if (copy.staging) this.#abandonedStagings.add(copy.staging);
    }
    this.#running.clear();
  }

  /** Finish every copy under way: queued small ones and big ones in the background. */
  async #drain(): Promise<void> {
    if (this.#signal?.aborted) this.#queued = []; // stopped: nothing new starts
    await this.#flushCopies();
    while (this.#running.size > 0) await this.#nextEnded();
  }

  /** Move the filled folder into place; report what was held back. */
  async #closeStaging(): Promise<void> {
    const staging = this.#staging;
    if (!staging) return;
    await this.#drain();
    await this.#retryFailed(staging);
    this.#staging = undefined;
    if (this.#abandonedStagings.has(staging) || this.#signal?.aborted) {
      // Stopped while it was filled: removed, not moved into place half filled.
      removeQuietly(this.#disk, staging.temp, true);
      return;
    }
    let failure: Error | undefined;
    try {
      this.#disk.rename(staging.temp, joinPath(this.#roots.replica, staging.path));
    } catch (error) {
      failure = asError(error);
      removeQuietly(this.#disk, staging.temp, true);
    }
    for (const outcome of staging.outcomes) {
      this.#record(
        failure && outcome.status === "done"
          ? { status: "failed", action: outcome.action, error: failure }
          : outcome,
        undefined,
      );
    }
  }
}

/**
 * Replica folders checked, during one plan, to be real folders rather than
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

/** Throw unless `path` is (not links to) a file or folder, as `kind` says. */
function expectKind(disk: Disk, path: string, kind: "file" | "dir", what: string): void {
  const info = disk.lstat(path);
  if (kind === "dir" ? !info.isDirectory : !info.isFile) {
    const actual = info.isSymlink ? "a symlink" : "not a " + (kind === "dir" ? "folder" : "file");
    throw new Error(`${what} is ${actual}; nothing is written through it`);
  }
}

function done(action: Action, bytes = 0, replicaKey?: StatKey): Outcome {
  return replicaKey === undefined
    ? { status: "done", action, bytes }
    : { status: "done", action, bytes, replicaKey };
}

function toOutcome(action: Extract<Action, { op: "copy" }>, result: CopyResult): Outcome {
  switch (result.status) {
    case "done":
      return done(action, action.source.size, result.key);
    case "skipped":
      return { status: "skipped", action, reason: result.reason };
    case "failed":
      return {
        status: "failed",
        action,
        error: Object.assign(new Error(result.message), { name: result.name }),
      };
  }
}

function localCopies(disk: Disk, jobs: readonly CopyJob[]): CopyResult[] {
  return jobs.map((job) => copyFile(disk, job) as CopyResult);
}

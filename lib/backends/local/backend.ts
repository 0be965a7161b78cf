/**
 * The local backend: `--replica` a folder on this machine (whatever no other
 * backend claims). One writer per replica: an advisory lock on the folder,
 * and shared locks on the folders above it (see `lock.ts`), so that no two
 * mirrors write the same folder, nor one inside another's.
 *
 * @module
 */
import { asError, reason } from "../../core/error.ts";
import type { Rate } from "../../core/rate.ts";
import {
  absolutePath,
  isRemote,
  isWithin,
  pathExists,
  realPathOf,
  stablePathOf,
} from "../../core/paths.ts";
import {
  type Backend,
  type Note,
  ownFiles,
  type ReplicaSession,
  type RunPaths,
} from "../../engine/backend.ts";
import { runningMirrorOf } from "../../state/state.ts";
import { LocalReplica, LocalTree } from "./local.ts";
import { lockAround, lockedBelow, LockedError, lockFolder } from "./lock.ts";

/** The local backend; see the module documentation. */
export const localBackend: Backend = {
  name: "local",
  form: "a folder",
  // A colon before the first slash names a remote replica (rsync's rule: `./a:b` is a folder).
  claims: (replica) => !isRemote(replica),
  flags: {},
  refusal: (replica, paths) => localRefusal(replica, paths),
  open: (replica, _flags, run) =>
    Promise.resolve(
      new LocalSession(
        replica,
        run.stateFile,
        run.dryRun || run.verify,
        run.backupDir,
        run.rate,
        // The read-ahead thread waits for the next full cycle (the run's end stops it).
        run.intervalSeconds * 1000 + LINGER_MARGIN_MS,
      ),
    ),
};

/** How much longer than the interval the read-ahead thread stays unused (a cycle's start
 * may come late). */
const LINGER_MARGIN_MS = 1000;

/** Whether a shared lock on the folder `path` can be had now (none holds it exclusively). */
function sharedLockFree(path: string): boolean {
  try {
    using file = Deno.openSync(path, { read: true });
    return file.tryLockSync(false);
  } catch {
    return false;
  }
}

/** A run's hold on a local replica folder. */
class LocalSession implements ReplicaSession {
  readonly id: string;
  readonly watchable = true;
  readonly #given: string;
  readonly #stateFile: string;
  readonly #readOnly: boolean;
  readonly #rate: Rate | undefined;
  /** How long the replica's read-ahead thread stays unused. */
  readonly #lingerMs: number;
  #lock: Deno.FsFile | undefined;
  /** Shared locks on the folders above the replica (see `lockAround`). */
  #around: readonly Deno.FsFile[] = [];
  /** The folder could not be locked (no `flock` there): only the state file is. */
  #lockWarning: string | undefined;
  #aroundWarning: string | undefined;

  readonly backupWithin?: string;
  /** `--backup-dir`: its real path, and as given. */
  readonly #backupDir: { readonly path: string; readonly where: string } | undefined;

  constructor(
    given: string,
    stateFile: string,
    readOnly: boolean,
    backupDir: string | undefined,
    rate: Rate | undefined,
    lingerMs: number,
  ) {
    this.#given = given;
    this.#lingerMs = lingerMs;
    this.#stateFile = stateFile;
    this.#readOnly = readOnly;
    this.#rate = rate;
    this.id = stablePathOf(given);
    if (backupDir !== undefined) {
      const path = realPathOf(backupDir), replica = realPathOf(given);
      this.#backupDir = { path, where: backupDir };
      if (isWithin(path, replica)) this.backupWithin = path.slice(replica.length + 1);
    }
  }

  verifyTree() {
    return { tree: new LocalTree(this.#given), links: true, owners: true };
  }

  async hold(): Promise<string | undefined> {
    if (this.#readOnly || !pathExists(realPathOf(this.#given))) return undefined;
    return await this.#take();
  }

  async take(): Promise<readonly Note[] | string> {
    if (this.#readOnly) return [];
    const notes: Note[] = [];
    if (this.#lock === undefined && this.#lockWarning === undefined) {
      try {
        Deno.mkdirSync(realPathOf(this.#given), { recursive: true });
        notes.push({
          level: "info",
          message: "Replica folder {path} has been created.",
          properties: { action: "mkdir", path: this.#given },
        });
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) {
          return `--replica: cannot create '${this.#given}': ${reason(asError(error))}.`;
        }
      }
      const refused = await this.#take();
      if (refused !== undefined) return refused;
    }
    if (this.#lockWarning !== undefined) {
      notes.push({
        level: "warn",
        message: "Cannot lock the replica folder {path} ({reason}); only the state file is " +
          "locked, so another mirror with another state file could write it too.",
        properties: { action: "lock", path: this.#given, reason: this.#lockWarning },
      });
    }
    if (this.#aroundWarning !== undefined) {
      notes.push({
        level: "warn",
        message: "Cannot check that no other mirror writes a folder around the replica {path} " +
          "({reason}): a mirror of a folder above it would not be refused.",
        properties: { action: "lock", path: this.#given, reason: this.#aroundWarning },
      });
    }
    return notes;
  }

  replica(
    state: Parameters<ReplicaSession["replica"]>[0],
    log: Parameters<ReplicaSession["replica"]>[1],
  ) {
    return new LocalReplica(absolutePath(this.#given), {
      where: this.#given,
      names: state,
      readAheadLingerMs: this.#lingerMs,
      ...(this.#backupDir === undefined ? {} : { backupDir: this.#backupDir }),
      ...(this.#rate ? { rate: this.#rate } : {}),
      onWorkerFailure: (error) =>
        log.warn(
          "The copy worker stopped ({reason}); files are copied without it from now on.",
          { action: "worker", reason: reason(error) },
        ),
    });
  }

  async relock(): Promise<string | undefined> {
    if (this.#readOnly || this.#lockWarning !== undefined) return undefined;
    this.#unlock();
    return await this.#take();
  }

  close(): Promise<void> {
    this.#unlock();
    return Promise.resolve();
  }

  #unlock(): void {
    this.#lock?.close();
    this.#lock = undefined;
    for (const file of this.#around) file.close();
    this.#around = [];
  }

  async #take(): Promise<string | undefined> {
    const real = realPathOf(this.#given), given = this.#given;
    try {
      this.#lock = lockFolder(real);
    } catch (error) {
      if (error instanceof LockedError) {
        if (sharedLockFree(real)) {
          // Held shared only: another mirror's replica is inside this one.
          const below = lockedBelow(real);
          return `--replica: '${given}' contains ${
            below === undefined ? "" : `'${below}', `
          }the replica of another running mirror.`;
        }
        // Who it is can be told when it shares the state file (the same command twice).
        const pid = await runningMirrorOf(this.#stateFile, real);
        return `--replica: '${given}' is being written by another running mirror${
          pid === undefined ? "" : ` (pid ${pid})`
        }.`;
      }
      if (error instanceof Deno.errors.NotFound) return undefined; // made later
      if (
        error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable
      ) {
        return `--replica: cannot open '${given}': ${reason(error)}.`;
      }
      this.#lockWarning = reason(asError(error));
      return undefined;
    }
    const around = lockAround(real);
    if ("inside" in around) {
      this.#unlock();
      return `--replica: '${given}' is inside '${around.inside}', the replica of another ` +
        "running mirror.";
    }
    this.#around = around.held;
    if (around.unchecked) {
      this.#aroundWarning = around.unchecked instanceof Deno.errors.NotCapable
        ? "the permissions given are scoped to it"
        : reason(around.unchecked);
    }
    return undefined;
  }
}

/** The target of `path` when it is a symlink (here: one whose target is missing). */
function danglingLink(path: string): string | undefined {
  try {
    return Deno.lstatSync(path).isSymlink ? Deno.readLinkSync(path) : undefined;
  } catch {
    return undefined;
  }
}

/** Why a local replica folder cannot be used, or overlaps the source or the program's files. */
function localRefusal(replica: string, paths: RunPaths): string | undefined {
  try {
    if (!Deno.statSync(replica).isDirectory) {
      return `--replica: '${replica}' exists and is not a folder.`;
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      return `--replica: cannot use '${replica}': ${reason(asError(error))}.`;
    }
    const link = danglingLink(replica);
    if (link !== undefined) {
      return `--replica: '${replica}' is a symlink to '${link}', which does not exist.`;
    }
  }
  const own = ownFiles(paths);
  let real: { source: string; replica: string; own: string[] };
  try {
    real = {
      source: realPathOf(paths.source),
      replica: realPathOf(replica),
      own: own.map(([, file]) => realPathOf(file)),
    };
  } catch (error) {
    return `cannot resolve the paths: ${reason(asError(error))}.`;
  }
  const { source } = paths;
  if (real.source === real.replica) {
    return `--replica: '${replica}' is the source folder itself.`;
  }
  if (isWithin(real.replica, real.source)) {
    return `--replica: '${replica}' is inside the source folder '${source}'.`;
  }
  if (isWithin(real.source, real.replica)) {
    return `--replica: '${replica}' contains the source folder '${source}'.`;
  }
  for (const [at, [flag, file]] of own.entries()) {
    if (isWithin(real.own[at]!, real.replica)) {
      return `${flag}: '${file}' is inside the replica folder, where it would be deleted.`;
    }
  }
  return paths.backupDir === undefined ? undefined : backupRefusal(paths.backupDir, real);
}

/** Why `--backup-dir` cannot be `dir` for a local replica (inside it: see `backupWithin`). */
function backupRefusal(dir: string, real: { source: string; replica: string }): string | undefined {
  if (isRemote(dir)) return `--backup-dir: '${dir}' is not a folder here, as the replica is.`;
  let backup: string;
  try {
    backup = realPathOf(dir);
    if (pathExists(backup) && !Deno.statSync(backup).isDirectory) {
      return `--backup-dir: '${dir}' exists and is not a folder.`;
    }
  } catch (error) {
    return `--backup-dir: cannot use '${dir}': ${reason(asError(error))}.`;
  }
  if (isWithin(backup, real.source)) {
    return `--backup-dir: '${dir}' is inside the source folder, where it would be mirrored.`;
  }
  if (backup === real.replica) return `--backup-dir: '${dir}' is the replica folder itself.`;
  return undefined;
}

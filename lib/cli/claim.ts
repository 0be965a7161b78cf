/**
 * What a run takes hold of before it writes: the replica (an advisory lock on
 * its root folder, so one writer per replica) and the state file (locked
 * too). A dry run writes neither, so it takes no lock and only reads the
 * state.
 *
 * In two steps, so that a refusal touches nothing: {@link claim} locks what
 * exists already and refuses when another running mirror holds it; then, once
 * the log is open, {@link Claim.complete} makes what is missing (the state
 * file, the replica folder) and locks it.
 *
 * @module
 */
import { asError, reason } from "../core/error.ts";
import { lockAround, lockedBelow, LockedError, lockFolder } from "../backends/local/lock.ts";
import { pathExists } from "../core/paths.ts";
import { MirrorState, runningMirrorOf, StateFileError, type StatePair } from "../state/state.ts";

/** The paths a claim is about: as the user gave them (for messages) and real. */
export interface ClaimPaths {
  /** `--replica` as given. */
  readonly replica: string;
  /** `--state-file` as given. */
  readonly stateFile: string;
  /** Real paths of the pair. */
  readonly roots: StatePair;
  /**
   * The replica is not a folder here (a bucket): neither locked nor made
   * here (its own lock is the replica's business).
   *
   * @default {false}
   */
  readonly remote?: boolean;
}

/** Refusal messages are one line naming the flag. */
export type Refusal = string;

/** Whether a shared lock on the folder `path` can be had now (none holds it exclusively). */
function sharedLockFree(path: string): boolean {
  try {
    using file = Deno.openSync(path, { read: true });
    return file.tryLockSync(false);
  } catch {
    return false;
  }
}

/** A run's hold on its replica and state; see the module documentation. */
export class Claim {
  readonly #paths: ClaimPaths;
  readonly #dryRun: boolean;
  #replicaLock: Deno.FsFile | undefined;
  /** Shared locks on the folders above the replica (see `lockAround`). */
  #around: readonly Deno.FsFile[] = [];
  #state: MirrorState | undefined;
  /** Why the state file's content was set aside, if it was. */
  warning: string | undefined;
  /** Why the state file's newest record could not be used, when the one before it was. */
  older: string | undefined;
  /** The replica folder did not exist and was made. */
  createdReplica = false;
  /** The replica folder could not be locked (a file system without `flock`):
   * only the state file is. */
  lockWarning: string | undefined;
  /** The folders above the replica could not all be locked (permissions
   * scoped to it): a mirror of a folder around it would not be refused. */
  aroundWarning: string | undefined;

  private constructor(paths: ClaimPaths, dryRun: boolean) {
    this.#paths = paths;
    this.#dryRun = dryRun;
  }

  /**
   * First step: lock the replica and open the state file where they exist.
   * Returns a refusal when another running mirror holds either, or when the
   * state file cannot be used.
   */
  static async claim(paths: ClaimPaths, dryRun: boolean): Promise<Claim | Refusal> {
    const claim = new Claim(paths, dryRun);
    if (dryRun) {
      const refused = await claim.#openState(true);
      return refused ?? claim;
    }
    if (!paths.remote && pathExists(paths.roots.replica)) {
      const refused = await claim.#lockReplica();
      if (refused !== undefined) return refused;
    }
    if (pathExists(paths.stateFile)) {
      const refused = await claim.#openState(false);
      if (refused !== undefined) {
        claim.release();
        return refused;
      }
    }
    return claim;
  }

  /** Second step: make and lock the state file and the replica folder where missing. */
  async complete(): Promise<Refusal | undefined> {
    if (this.#dryRun) return undefined;
    if (this.#state === undefined) {
      const refused = await this.#openState(false);
      if (refused !== undefined) return refused;
    }
    if (
      !this.#paths.remote && this.#replicaLock === undefined && this.lockWarning === undefined
    ) {
      try {
        Deno.mkdirSync(this.#paths.roots.replica, { recursive: true });
        this.createdReplica = true;
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) {
          return `--replica: cannot create '${this.#paths.replica}': ${reason(asError(error))}.`;
        }
      }
      return await this.#lockReplica();
    }
    return undefined;
  }

  /** The state (after {@link complete}, or at once in a dry run). */
  get state(): MirrorState {
    if (this.#state === undefined) throw new Error("the claim is not complete");
    return this.#state;
  }

  /**
   * The replica folder was made again during the run (it had been removed):
   * lock the new one. Returns an error message when another mirror got it.
   */
  async relock(): Promise<Refusal | undefined> {
    if (this.#dryRun || this.#paths.remote || this.lockWarning !== undefined) return undefined;
    this.#unlockReplica();
    return await this.#lockReplica();
  }

  /** Release every lock and close the state file. */
  release(): void {
    this.#state?.close();
    this.#unlockReplica();
  }

  #unlockReplica(): void {
    this.#replicaLock?.close();
    this.#replicaLock = undefined;
    for (const file of this.#around) file.close();
    this.#around = [];
  }

  async #lockReplica(): Promise<Refusal | undefined> {
    const real = this.#paths.roots.replica, given = this.#paths.replica;
    try {
      this.#replicaLock = lockFolder(real);
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
        const pid = await runningMirrorOf(this.#paths.stateFile, real);
        return `--replica: '${given}' is being written by another running mirror${
          pid === undefined ? "" : ` (pid ${pid})`
        }.`;
      }
      if (error instanceof Deno.errors.NotFound) return undefined; // made later
      if (
        error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable
      ) {
        return `--replica: cannot open '${this.#paths.replica}': ${reason(error)}.`;
      }
      this.lockWarning = reason(asError(error));
      return undefined;
    }
    const around = lockAround(real);
    if ("inside" in around) {
      this.#unlockReplica();
      return `--replica: '${given}' is inside '${around.inside}', the replica of another ` +
        "running mirror.";
    }
    this.#around = around.held;
    if (around.unchecked) {
      this.aroundWarning = around.unchecked instanceof Deno.errors.NotCapable
        ? "the permissions given are scoped to it"
        : reason(around.unchecked);
    }
    return undefined;
  }

  async #openState(readOnly: boolean): Promise<Refusal | undefined> {
    try {
      const opened = await MirrorState.open(this.#paths.stateFile, this.#paths.roots, { readOnly });
      this.#state = opened.state;
      this.warning = opened.warning;
      this.older = opened.older;
      return undefined;
    } catch (error) {
      if (!(error instanceof StateFileError)) throw error;
      return `--state-file: ${error.message}.`;
    }
  }
}

/**
 * The state file a run takes hold of before it writes (locked, so that one
 * run at a time uses it). A dry run writes nothing, so it takes no lock and
 * only reads the state. The replica is the backend's to take (see
 * `engine/backend.ts`).
 *
 * In two steps, so that a refusal touches nothing: {@link Claim.claim} opens
 * the state file where it exists and refuses when another running mirror
 * holds it; then, once the log is open, {@link Claim.complete} makes it where
 * it is missing.
 *
 * @module
 */
import { pathExists } from "../core/paths.ts";
import { MirrorState, StateFileError, type StatePair } from "../state/state.ts";

/** The state file a claim is about. */
export interface ClaimPaths {
  /** `--state-file` as given. */
  readonly stateFile: string;
  /** The pair, as the state knows it (the source's real path, the replica's identity). */
  readonly roots: StatePair;
}

/** Refusal messages are one line naming the flag. */
export type Refusal = string;

/** A run's hold on its state file; see the module documentation. */
export class Claim {
  readonly #paths: ClaimPaths;
  readonly #dryRun: boolean;
  #state: MirrorState | undefined;
  /** Why the state file's content was set aside, if it was. */
  warning: string | undefined;
  /** Why the state file's newest record could not be used, when the one before it was. */
  older: string | undefined;

  private constructor(paths: ClaimPaths, dryRun: boolean) {
    this.#paths = paths;
    this.#dryRun = dryRun;
  }

  /**
   * First step: open the state file where it exists. Returns a refusal when
   * another running mirror holds it, or when it cannot be used.
   */
  static async claim(paths: ClaimPaths, dryRun: boolean): Promise<Claim | Refusal> {
    const claim = new Claim(paths, dryRun);
    if (dryRun || pathExists(paths.stateFile)) {
      const refused = await claim.#open(dryRun);
      if (refused !== undefined) return refused;
    }
    return claim;
  }

  /** Second step: make and lock the state file where it is missing. */
  async complete(): Promise<Refusal | undefined> {
    if (this.#dryRun || this.#state !== undefined) return undefined;
    return await this.#open(false);
  }

  /** The state (after {@link complete}, or at once in a dry run). */
  get state(): MirrorState {
    if (this.#state === undefined) throw new Error("the claim is not complete");
    return this.#state;
  }

  /** Release the state file. */
  release(): void {
    this.#state?.close();
  }

  async #open(readOnly: boolean): Promise<Refusal | undefined> {
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

/**
 * Carry out a plan on a {@link Replica}. Each action ends in an
 * {@link Outcome}; a failure is data, never an exception that stops the rest.
 * This is the one place that knows about dry runs: in one, no replica method
 * is called.
 *
 * A new folder is begun out of readers' sight where the replica can
 * ({@link Replica.beginFolder}), filled, and put in place at once: the plan
 * lists a folder's whole subtree right after it, so one folder is filled at a
 * time, and the outcomes inside it are reported once it is in place.
 *
 * @module
 */
import { CopyScheduler, MIN_BATCHED_WRITES } from "./copy_scheduler.ts";
import { isSparse, type Owner, sameMtime, type StatKey, statKey } from "../core/entry.ts";
import { asError } from "../core/error.ts";
import type { OwnerPolicy } from "./owners.ts";
import { pacer } from "../core/pace.ts";
import { hasAncestorIn, isBelow, joinPath } from "../core/paths.ts";
import { type Action, ownerChange } from "./plan.ts";
import {
  BIG_FILE,
  type FileWrite,
  type Kept,
  type Replica,
  type WriteResult,
} from "../core/replica.ts";

/** How one action ended. */
export type Outcome =
  /** Done; `bytes` of file content copied. For a file copied or touched,
   * `replicaKey` is the replica file's stat key as the mirror left it.
   * `quiet`: nothing worth a log line changed (a folder's mtime put back after
   * this cycle's own writes in it, an owner change that was not allowed).
   * `prefix`: a file copied as its first bytes only (it grew while copied;
   * see `WriteResult`). `md5`: a copied file's MD5, when the copy passed its
   * bytes through the program. */
  | {
    readonly status: "done";
    readonly action: Action;
    readonly bytes: number;
    readonly replicaKey?: StatKey;
    readonly quiet?: boolean;
    readonly prefix?: boolean;
    readonly md5?: string;
    /** What the action deleted or overwrote was kept there first (`--backup-dir`). */
    readonly backup?: string;
  }
  /** Not done, for a reason that the next cycle resolves (the source moved on).
   * `changed`: the source changed while it was copied; `retryInMs`: it is
   * tried again after this pause (it keeps changing). */
  | {
    readonly status: "skipped";
    readonly action: Action;
    readonly reason: string;
    readonly changed?: boolean;
    readonly retryInMs?: number;
    /** Not retried: the replica cannot hold it (it is left out from now on). */
    readonly final?: boolean;
  }
  /** Failed (`error` a {@link BackupError}: what it would delete or overwrite could not be kept,
   * so it was left as it is). */
  | { readonly status: "failed"; readonly action: Action; readonly error: Error }
  /** Not attempted: a dry run (`backup`: what it deletes or overwrites would be kept first). */
  | { readonly status: "planned"; readonly action: Action; readonly backup?: boolean };

/** What an action would delete or overwrite could not be kept in the backup folder. */
export class BackupError extends Error {
  override name = "BackupError";
}

/** `--backup-dir` for one cycle (the replica's {@link Replica.backups}). */
export interface BackupOptions {
  /** The cycle folder's name. */
  readonly folder: string;
  /** Entries removed without a backup (the program's own temp files). */
  readonly skip?: (path: string) => boolean;
  /** The backup folder's path in the replica, where it lies inside it (excluded there). */
  readonly within?: string;
}

/** Options of {@link Applier} and {@link applyPlan}. */
export interface ApplyOptions {
  /** The source folder's real path: files are copied from below it. */
  readonly sourceRoot: string;
  /**
   * When aborted, no further action starts, writes under way stop, and a
   * folder being filled is dropped.
   *
   * @default never
   */
  readonly signal?: AbortSignal;
  /**
   * Called with each outcome once it is final (for a new folder's contents:
   * once the folder is in place).
   *
   * @default nothing
   */
  readonly onOutcome?: (outcome: Outcome) => void;
  /**
   * Called as each file copy ends (done or not), with its size, even while
   * its outcome is held back until its folder is in place.
   *
   * @default nothing
   */
  readonly onCopyEnded?: (bytes: number) => void;
  /**
   * Big files written at once.
   *
   * @default {4}
   */
  readonly parallel?: number;
  /**
   * Send small files to the replica in batches (see `copy_scheduler.ts`):
   * always, never, or once many were submitted (`"auto"`).
   *
   * @default {false}
   */
  readonly batches?: boolean | "auto";
  /**
   * Owners to give what is made or changed (learns refusals).
   *
   * @default owners are left alone
   */
  readonly owners?: OwnerPolicy;
  /**
   * Keep what actions delete or overwrite in the replica's backup folder
   * first; an entry that cannot be kept is left as it is (the action fails).
   *
   * @default nothing is kept
   */
  readonly backup?: BackupOptions;
  /**
   * Touch nothing: every action ends as `planned`.
   *
   * @default {false}
   */
  readonly dryRun?: boolean;
}

/**
 * Apply `actions` in order to `replica`; the outcomes, in the order they
 * became final. Actions under a folder that could not be made are not
 * attempted (the folder's own failure reports it). Batches are used when the
 * plan has many small copies (see `copy_scheduler.ts`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyPlan } from "./apply.ts";
 * import { LocalReplica } from "../backends/local/local.ts";
 * const dir = Deno.makeTempDirSync();
 * const replica = new LocalReplica(`${dir}/rep`);
 * await replica.makeRoot();
 * const outcomes = await applyPlan([{ op: "mkdir", path: "d", mode: 0o755 }], replica, {
 *   sourceRoot: dir,
 * });
 * assert.equal(outcomes[0]?.status, "done");
 * assert.ok(Deno.statSync(`${dir}/rep/d`).isDirectory);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export async function applyPlan(
  actions: readonly Action[],
  replica: Replica,
  options: ApplyOptions,
): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  const smallCopies = actions.filter((a) => a.op === "copy" && a.source.size < BIG_FILE).length;
  const applier = new Applier(replica, {
    batches: smallCopies >= MIN_BATCHED_WRITES,
    ...options,
    onOutcome: (outcome) => {
      outcomes.push(outcome);
      options.onOutcome?.(outcome);
    },
  });
  const pace = pacer();
  for (const action of actions) {
    if (options.signal?.aborted) break;
    await applier.apply(action);
    await pace();
  }
  await applier.finish();
  return outcomes;
}

/**
 * Outcomes a new folder holds back at most: a bigger one is put in place
 * when it has that many, and filled from there like any folder (memory stays
 * bounded however big the new tree).
 */
const MAX_HELD_OUTCOMES = 4096;

/** A new folder being filled, and the outcomes held back until it is in place. */
interface Staging {
  readonly path: string;
  readonly outcomes: Outcome[];
}

/** Applies actions one at a time; {@link Applier.finish} after the last. */
export class Applier {
  readonly #replica: Replica;
  readonly #options: ApplyOptions;
  readonly #scheduler: CopyScheduler<Staging | undefined>;
  readonly #failedDirs = new Set<string>();
  #staging: Staging | undefined;

  /**
   * @param replica what the actions change.
   * @param options see {@link ApplyOptions}.
   */
  constructor(replica: Replica, options: ApplyOptions) {
    this.#replica = replica;
    this.#options = options;
    this.#scheduler = new CopyScheduler(replica, {
      ...(options.parallel ?? replica.bigWritesAtOnce
        ? { parallel: options.parallel ?? replica.bigWritesAtOnce }
        : {}),
      batches: options.batches ?? false,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  /**
   * Carry out `action` (a copy may still be under way when this resolves).
   *
   * @param action what to do.
   * @returns how it ended, but for a copy (its outcome comes later) and an
   *   action under a folder that could not be made (not attempted).
   */
  async apply(action: Action): Promise<Outcome["status"] | undefined> {
    if (this.#options.dryRun) {
      // The one place that knows about dry runs: nothing below is reached.
      this.#record(
        this.#backsUp(action)
          ? { status: "planned", action, backup: true }
          : { status: "planned", action },
        undefined,
      );
      return "planned";
    }
    if (this.#failedDirs.has(action.path) || hasAncestorIn(action.path, this.#failedDirs)) return;
    if (action.op === "keep") { // nothing to do in the replica; reported
      const outcome: Outcome = action.blocks === undefined
        ? done(action)
        : { status: "skipped", action, reason: "it holds excluded entries" };
      this.#record(outcome, undefined);
      return outcome.status;
    }
    if (this.#staging && !isBelow(action.path, this.#staging.path)) await this.#closeStaging();
    // Folder attributes come after all writes; a hard link, after its file's.
    if ((action.op === "folder" && !action.opening) || action.op === "link") {
      await this.#closeStaging();
      await this.#scheduler.drain();
      await this.#scheduler.retryFailed(undefined);
    }
    await this.#bounded();
    const staging = this.#staging;
    try {
      if (action.op === "copy") return void await this.#copy(action, staging);
      const outcome = await this.#change(action);
      this.#record(outcome, this.#staging);
      return outcome.status;
    } catch (error) {
      if (action.op === "mkdir") this.#failedDirs.add(action.path);
      this.#record({ status: "failed", action, error: asError(error) }, staging);
      return "failed";
    }
  }

  /** Wait for every write, put a folder being filled in place. */
  async finish(): Promise<void> {
    if (this.#options.dryRun) return;
    await this.#closeStaging();
    await this.#scheduler.drain();
    await this.#scheduler.retryFailed(undefined);
  }

  /** Whether `action` deletes or overwrites a replica entry that is kept first. */
  #backsUp(action: Action): boolean {
    const backup = this.#options.backup;
    if (backup === undefined || this.#replica.backups === undefined) return false;
    if (action.op === "remove") return !(backup.skip?.(action.path) ?? false);
    return (action.op === "copy" || action.op === "symlink" || action.op === "link") &&
      action.update;
  }

  /**
   * Keep the replica's entry at `action.path` in the backup folder, where
   * `action` calls for it (`move`: that is its removal, or a copy of it the
   * caller removes, see {@link Kept.copied}).
   *
   * @returns where it went; undefined when nothing is kept.
   * @throws {BackupError} when it could not be kept (nothing of it is left there).
   */
  async #keep(action: Action, how: "move" | "copy"): Promise<Kept | undefined> {
    if (!this.#backsUp(action)) return undefined;
    const backups = this.#replica.backups!, backup = this.#options.backup!;
    // The backup folder itself, inside the replica (excluded there): never into itself.
    const within = backup.within;
    if (within !== undefined && (within === action.path || isBelow(within, action.path))) {
      throw new BackupError("it holds the backup folder");
    }
    const kind = action.op === "remove"
      ? action.kind
      : action.op === "copy"
      ? "file"
      : action.op === "symlink"
      ? "symlink"
      : undefined;
    try {
      return await backups.keep(action.path, how, backup.folder, kind);
    } catch (error) {
      throw new BackupError(`it could not be backed up (${asError(error).message})`);
    }
  }

  /** How messages name where `kept` went. */
  #shown(kept: Kept | undefined): string | undefined {
    return kept === undefined ? undefined : joinPath(this.#replica.backups!.where, kept.name);
  }

  /** The overwrite `kept` was made for did not happen: it goes (the entry is still there). */
  async #discard(kept: Kept | undefined): Promise<void> {
    if (kept !== undefined) await this.#replica.backups?.discard(kept.name).catch(() => {});
  }

  async #copy(action: Extract<Action, { op: "copy" }>, staging: Staging | undefined) {
    let kept: Kept | undefined;
    try {
      kept = await this.#keep(action, "copy");
    } catch (error) {
      this.#record({ status: "failed", action, error: asError(error) }, staging);
      return;
    }
    const source = action.source;
    const owner = this.#owners ? ownerChange(source, undefined, this.#owners) : undefined;
    const write: FileWrite = {
      path: action.path,
      from: joinPath(this.#options.sourceRoot, action.path),
      size: source.size,
      mtimeMs: source.mtimeMs,
      mode: source.mode,
      expectedKey: statKey(source),
      ...(owner ? { owner } : {}),
      ...(source.size >= BIG_FILE && isSparse(source) ? { sparse: true } : {}),
    };
    await this.#scheduler.submit(write, staging, (result) => {
      if (result.status === "done" && result.ownerRefused) {
        this.#owners?.refused(result.ownerRefused);
      }
      this.#options.onCopyEnded?.(source.size);
      const outcome = toOutcome(action, result);
      // Not written (failed, skipped, stopped): the old file is still there, its backup goes.
      if (outcome.status !== "done") void this.#discard(kept);
      this.#record(backedUp(outcome, this.#shown(kept)), staging);
    });
  }

  get #owners(): OwnerPolicy | undefined {
    return this.#options.owners;
  }

  /** Carry out one action other than a copy. */
  async #change(action: Exclude<Action, { op: "copy" | "keep" }>): Promise<Outcome> {
    const replica = this.#replica;
    switch (action.op) {
      case "root":
        await replica.makeRoot();
        return done(action);
      case "remove": {
        if (this.#backsUp(action)) {
          // Moved into the backup folder: that is its removal.
          const kept = await this.#keep(action, "move");
          if (kept?.copied) {
            try {
              await replica.remove(action.path, action.kind);
            } catch (error) {
              // Still there (a folder: what could not be removed): a file's copy goes.
              if (action.kind !== "dir") await this.#discard(kept);
              throw error;
            }
          }
          return backedUp(done(action), this.#shown(kept));
        }
        await replica.remove(action.path, action.kind);
        return done(action);
      }
      case "move": {
        if (replica.move === undefined) throw new Error("this replica cannot move entries");
        const key = await replica.move(action.from, action.path, action.kind);
        const moved = done(action, 0, key);
        return action.md5 === undefined ? moved : { ...moved, md5: action.md5 } as Outcome;
      }
      case "link": {
        if (replica.link === undefined) throw new Error("this replica cannot make hard links");
        const kept = await this.#keep(action, "copy");
        let key: StatKey;
        try {
          key = await replica.link(action.target, action.path);
        } catch (error) {
          await this.#discard(kept);
          throw error;
        }
        return backedUp(done(action, 0, key), this.#shown(kept));
      }
      case "mkdir":
        if (!this.#staging && replica.beginFolder) {
          await replica.beginFolder(action.path, action.mode);
          this.#staging = { path: action.path, outcomes: [] };
        } else {
          await replica.makeFolder(action.path, action.mode);
        }
        return done(action);
      case "symlink": {
        const owner = this.#owners
          ? ownerChange(
            { kind: "symlink", size: 0, ctimeMs: 0, ino: 0, mode: 0, ...action },
            undefined,
            this.#owners,
          )
          : undefined;
        const kept = await this.#keep(action, "copy");
        try {
          this.#refused(
            await replica.makeSymlink(action.path, action.target, owner, action.mtimeMs),
          );
        } catch (error) {
          await this.#discard(kept);
          throw error;
        }
        return backedUp(done(action), this.#shown(kept));
      }
      case "lattr": {
        const result = await replica.setAttributes(action.path, "symlink", {
          ...(action.mtimeMs === undefined ? {} : { mtimeMs: action.mtimeMs }),
          ...(action.owner ? { owner: action.owner } : {}),
        });
        this.#refused(result.ownerRefused);
        // Reported only when something changed.
        if (action.mtimeMs === undefined && !given(action.owner, result.ownerRefused)) {
          return quiet(action);
        }
        return done(action);
      }
      case "touch": {
        const result = await replica.setAttributes(action.path, "file", {
          mode: action.source.mode,
          mtimeMs: action.source.mtimeMs,
          expect: action.replica,
          ...(action.owner ? { owner: action.owner } : {}),
        });
        this.#refused(result.ownerRefused);
        const ownerOnly = action.replica.mode === action.source.mode &&
          sameMtime(action.replica.mtimeMs, action.source.mtimeMs, replica.mtimePrecision);
        if (ownerOnly && !given(action.owner, result.ownerRefused)) return quiet(action);
        return done(action, 0, result.key);
      }
      case "folder": {
        if (action.opening) {
          await replica.setAttributes(action.path, "dir", { mode: action.mode });
          return quiet(action);
        }
        let result;
        try {
          result = await replica.setAttributes(action.path, "dir", {
            mode: action.mode,
            mtimeMs: action.mtimeMs,
            ...(action.owner ? { owner: action.owner } : {}),
          });
        } catch (error) {
          // The replica folder itself may belong to someone else (a shared
          // folder the mirror may write in): its attributes are not ours to set.
          if (action.path === "" && error instanceof Deno.errors.PermissionDenied) {
            return quiet(action);
          }
          throw error;
        }
        this.#refused(result.ownerRefused);
        const unchanged = action.quiet ||
          (action.ownerOnly === true && !given(action.owner, result.ownerRefused));
        return unchanged ? quiet(action) : done(action);
      }
    }
  }

  /** Remember an owner change the replica refused: not asked again. */
  #refused(refused: Owner | undefined): void {
    if (refused) this.#owners?.refused(refused);
  }

  #record(outcome: Outcome, staging: Staging | undefined): void {
    if (staging) staging.outcomes.push(outcome);
    else this.#options.onOutcome?.(outcome);
  }

  /** A folder being filled that holds back too many outcomes is put in place now. */
  async #bounded(): Promise<void> {
    if (this.#staging && this.#staging.outcomes.length >= MAX_HELD_OUTCOMES) {
      await this.#closeStaging();
    }
  }

  /** Put the filled folder in place (drop it after a stop); report what was held back. */
  async #closeStaging(): Promise<void> {
    const staging = this.#staging;
    if (!staging) return;
    await this.#scheduler.drain();
    await this.#scheduler.retryFailed(staging);
    this.#staging = undefined;
    if (this.#options.signal?.aborted) {
      // Stopped while it was filled: dropped, not put in place half filled.
      await this.#replica.dropFolder?.(staging.path);
      return;
    }
    let failure: Error | undefined;
    try {
      await this.#replica.commitFolder?.(staging.path);
    } catch (error) {
      failure = asError(error);
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

/** Whether any part of the owner change `asked` was given. */
function given(asked: Owner | undefined, refused: Owner | undefined): boolean {
  if (asked === undefined) return false;
  return (asked.uid !== undefined && refused?.uid === undefined) ||
    (asked.gid !== undefined && refused?.gid === undefined);
}

function done(action: Action, bytes = 0, replicaKey?: StatKey): Outcome {
  return replicaKey === undefined
    ? { status: "done", action, bytes }
    : { status: "done", action, bytes, replicaKey };
}

/** `outcome`, done after what it deleted or overwrote was kept at `backup`. */
function backedUp(outcome: Outcome, backup: string | undefined): Outcome {
  return backup === undefined || outcome.status !== "done" ? outcome : { ...outcome, backup };
}

function quiet(action: Action): Outcome {
  return { status: "done", action, bytes: 0, quiet: true };
}

function toOutcome(action: Extract<Action, { op: "copy" }>, result: WriteResult): Outcome {
  switch (result.status) {
    case "done":
      if (result.prefix) return { status: "done", action, bytes: action.source.size, prefix: true };
      return {
        status: "done",
        action,
        bytes: action.source.size,
        ...(result.key ? { replicaKey: result.key } : {}),
        ...(result.md5 ? { md5: result.md5 } : {}),
      };
    case "skipped":
      return {
        status: "skipped",
        action,
        reason: result.reason,
        ...(result.changed ? { changed: true } : {}),
        ...(result.final ? { final: true } : {}),
      };
    case "failed":
      return {
        status: "failed",
        action,
        error: Object.assign(new Error(result.message), { name: result.name }),
      };
  }
}

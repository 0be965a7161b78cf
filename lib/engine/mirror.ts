/**
 * {@link Mirror}: keeps a replica in step with a source, cycle after cycle.
 * It only orchestrates: open both roots -> walk both trees -> compare
 * contents -> plan (with the deletion guards) -> apply -> report, each stage
 * returning data; a cycle returns an immutable {@link CycleResult}. It never
 * touches a file system itself: the two sides are a {@link TreeReader} and a
 * {@link Replica}.
 *
 * @module
 */
import { getLogger } from "npm:@logtape/logtape@^2.4.2";
import { Applier, type Outcome } from "./apply.ts";
import { Backoff } from "../core/backoff.ts";
import { FolderDigests } from "./digest.ts";
import { type Entry, NOUN } from "../core/entry.ts";
import { asError, reason } from "../core/error.ts";
import { type ExcludeMatcher, excludeMatcher, isExcludedFolder } from "../core/exclude.ts";
import { deletionGuard, type GuardRefusal } from "./guards.ts";
import { HardLinks } from "./links.ts";
import { March, type MarchResult, type ScopeFolder } from "./march.ts";
import { MoveFinder } from "./moves.ts";
import { OwnerPolicy } from "./owners.ts";
import type { PairIndex } from "../state/pair_index.ts";
import { comparePaths, hasAncestorIn, isWithin, joinPath, parentOf } from "../core/paths.ts";
import { cycleFolderOf, isCycleFolder } from "../core/backup_names.ts";
import type { Action } from "./plan.ts";
import type { Replica, RootInfo, TreeReader } from "../core/replica.ts";
import {
  count,
  emptyTally,
  eventful,
  type MirrorLog,
  reportOutcome,
  reportProblem,
  reportSummary,
  type Tally,
} from "./report.ts";
import { MirrorState } from "../state/state.ts";

/** What one cycle did: its counts (see `Tally`), frozen. */
export type CycleResult = Readonly<Tally>;

/**
 * Told of the replica paths a cycle writes, before and after (the watch mode
 * tells the events of the mirror's own writes from someone else's).
 */
export interface WriteObserver {
  /**
   * The cycle is about to write `paths`.
   *
   * @param paths the replica entry paths it may write, create or remove.
   */
  writing(paths: readonly string[]): void;
  /**
   * The cycle wrote `paths` (or tried to).
   *
   * @param paths the same paths as the {@link WriteObserver.writing} call before.
   */
  written(paths: readonly string[]): void;
  /**
   * A cycle listed the folder `dir` of one tree (the watch mode watches it).
   * Optional.
   *
   * @param side which tree.
   * @param dir the folder's path relative to the root.
   * @param entry the folder itself.
   */
  folder?(side: "source" | "replica", dir: string, entry: Entry): void;
  /**
   * The copy of `path` was left behind (its source kept changing); it is
   * tried again after `ms`. Optional.
   *
   * @param path the file's path relative to the roots.
   * @param ms the pause.
   */
  paused?(path: string, ms: number): void;
  /**
   * A partial cycle found something only a full cycle can settle (a file
   * with several names, changed since the last full cycle, whose other names
   * it could not all find): one should run soon. Optional.
   */
  fullCycleWanted?(): void;
}

/** Told of one cycle's copies as they are planned and made (a progress bar). */
export interface CopyObserver {
  /**
   * One more file of `bytes` bytes to copy.
   *
   * @param bytes its size.
   */
  add(bytes: number): void;
  /**
   * A copy of `bytes` bytes ended.
   *
   * @param bytes its size.
   */
  advance(bytes: number): void;
  /** Every copy of the cycle is known (the walk is over). */
  known(): void;
  /** The cycle is over. */
  stop(): Promise<void>;
}

/** Settings of a {@link Mirror} beyond its two trees. */
export interface MirrorOptions {
  /**
   * Where the log lines go.
   *
   * @default LogTape's logger `["folder-mirror"]`
   */
  readonly log?: MirrorLog;
  /**
   * A cycle that would delete more replica entries than this deletes none.
   *
   * @default no limit
   */
  readonly maxDelete?: number;
  /**
   * `--backup-keep`: with a replica that keeps backups ({@link Replica.backups}),
   * the newest cycle folders kept after each full cycle; older ones are removed.
   *
   * @default all are kept
   */
  readonly backupKeep?: number;
  /**
   * The backup folder's path in the replica, where it lies inside it: it must
   * stay excluded (rules read again that would not exclude it are refused),
   * and no backup goes into it.
   *
   * @default outside the replica
   */
  readonly backupWithin?: string;
  /**
   * An empty source may empty the replica even though no earlier cycle
   * recorded this source root (`--accept-empty-source`; see `guards.ts`).
   *
   * @default {false}
   */
  readonly acceptEmptySource?: boolean;
  /**
   * Walk, compare and plan, log what would be done, change nothing (not
   * even make the replica folder or save the state).
   *
   * @default {false}
   */
  readonly dryRun?: boolean;
  /**
   * gitignore-style patterns of paths neither copied nor deleted.
   *
   * @default none
   */
  readonly exclude?: readonly string[];
  /**
   * Rules that may change while the mirror runs: the texts of files in
   * .gitignore syntax (`--exclude-from`), asked for at the start of every
   * cycle, full or partial. Their rules come before those of `exclude` (the
   * last rule that matches wins). The matcher is built again only when the
   * array returned is not the one returned the time before.
   *
   * @default none
   */
  readonly excludeFiles?: () => readonly string[];
  /**
   * Makes the observer of each cycle's copies (a progress bar), when told.
   *
   * @default none
   */
  readonly progress?: () => CopyObserver;
  /**
   * Told of every cycle's writes (the watch mode).
   *
   * @default none
   */
  readonly writes?: WriteObserver;
  /**
   * What the mirror remembers between cycles and runs (see `state.ts`); it
   * is saved after each full cycle (unless {@link savesAtEnd}).
   *
   * @default a state in memory only
   */
  readonly state?: MirrorState;
  /**
   * The caller saves the state when the run ends ({@link Mirror.saveState}
   * with `clean`), not each full cycle: a run of one cycle then commits the
   * state file once at its end rather than twice (each commit is an
   * `fdatasync`).
   *
   * @default {false}
   */
  readonly savesAtEnd?: boolean;
  /**
   * Called when a cycle finds the replica folder is not the one the last
   * cycle wrote (it made it, or the replica, a symlink, now points elsewhere),
   * before it writes into it; a message returned says why the cycle must not
   * write there (another mirror holds it).
   *
   * @default nothing
   */
  readonly onReplicaChanged?: () => Promise<string | undefined>;
}

/** The roots as a cycle found them. */
interface Opened {
  readonly source: RootInfo;
  /** Undefined when the replica folder does not exist (a dry run makes none). */
  readonly replica: RootInfo | undefined;
}

/**
 * Keeps one replica in step with one source, cycle after cycle.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalReplica, LocalTree } from "../backends/local/local.ts";
 * import { Mirror } from "./mirror.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.mkdirSync(`${dir}/src`);
 * Deno.writeTextFileSync(`${dir}/src/a.txt`, "hello");
 * const mirror = new Mirror(new LocalTree(`${dir}/src`), new LocalReplica(`${dir}/rep`));
 * const result = await mirror.cycle();
 * assert.equal(result.copied, 1);
 * assert.equal(Deno.readTextFileSync(`${dir}/rep/a.txt`), "hello");
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class Mirror {
  readonly #source: TreeReader;
  readonly #replica: Replica;
  readonly #log: MirrorLog;
  readonly #options: MirrorOptions;
  readonly #state: MirrorState;
  readonly #warnedSpecial = new Set<string>();
  readonly #warnedKept = new Set<string>();
  readonly #warnedRefused = new Set<string>();
  readonly #warnedUnreadable = new Set<string>();
  /** Which owners are kept, once found out (see {@link #owners}). */
  #ownerPolicy: OwnerPolicy | undefined;
  /** Files that keep changing while copied, and when each is tried again. */
  readonly #changing = new Backoff();
  /** Where the replica root was at the last cycle (its real path or identity). */
  #replicaAt: string | undefined;
  /** A cycle is under way (cycles of one mirror never overlap). */
  #cycling = false;
  /** A full cycle has logged its summary: the first one always does (so a run
   * that finds the replica up to date says so, with the tree digest). */
  #summarized = false;
  /** `--backup-dir`: the cycle folder of the last full cycle (see `core/backup_names.ts`). */
  #backupFolder: string | undefined;
  /** A summary said the digest was too much to read (said once a run). */
  #saidTooMuch = false;
  /** The groups of hard-linked names the cycles of this run met (see `links.ts`). */
  readonly #linkGroups = new Map<number, readonly string[]>();
  /** When the last full cycle started (epoch ms; 0: none yet). */
  #lastFullAt = 0;
  /** Loaded with the first cycle; built again when the rules change. */
  #exclude: Promise<ExcludeMatcher | undefined>;
  /** The texts of `excludeFiles` that {@link #exclude} was built from. */
  #excludeTexts: readonly string[] = [];
  /** Texts of `excludeFiles` refused (they let the backup folder be deleted). */
  #rejectedTexts: readonly string[] | undefined;

  /**
   * A mirror of `source` into `replica`; nothing is read or written until
   * the first {@link cycle}.
   *
   * @param source the tree to mirror.
   * @param replica the tree kept identical to it.
   * @param options see {@link MirrorOptions}.
   */
  constructor(source: TreeReader, replica: Replica, options: MirrorOptions = {}) {
    this.#source = source;
    this.#replica = replica;
    this.#log = options.log ?? getLogger(["folder-mirror"]);
    this.#options = options;
    this.#state = options.state ??
      MirrorState.inMemory({ source: source.where, replica: replica.where });
    this.#exclude = this.#matcher();
  }

  /** The matcher of `exclude` and the texts last read from `excludeFiles`. */
  /**
   * The exclude files were read again: their rules hold from this cycle on,
   * unless they would let the mirror delete the backup folder inside the
   * replica (one WARNING; the old rules are kept).
   */
  async #newRules(texts: readonly string[]): Promise<void> {
    const before = this.#excludeTexts;
    this.#excludeTexts = texts;
    const next = this.#matcher();
    const within = this.#options.backupWithin;
    if (within !== undefined && !isExcludedFolder(await next.catch(() => undefined), within)) {
      this.#excludeTexts = before;
      this.#rejectedTexts = texts;
      this.#log.warn(
        "The exclude files' new rules do not exclude the backup folder {path}, inside the " +
          "replica, where the mirror would delete it: the old rules are kept.",
        { action: "exclude", path: within },
      );
      return;
    }
    this.#exclude = next;
  }

  #matcher(): Promise<ExcludeMatcher | undefined> {
    const matcher = excludeMatcher(this.#options.exclude ?? [], this.#excludeTexts);
    matcher.catch(() => {}); // a failure to load surfaces where a cycle awaits it
    return matcher;
  }

  /** Bytes of file content read for MD5s since this mirror was made (both
   * sides, where the trees count them). */
  get hashedBytes(): number {
    const counted = (tree: unknown) => (tree as { hashedBytes?: number }).hashedBytes ?? 0;
    return counted(this.#source) + counted(this.#replica);
  }

  /**
   * Run one full cycle. Never throws for a file-system problem: each one is
   * logged and counted in the result's `failed`.
   *
   * @param signal stops the cycle early (what it did so far stays done).
   * @returns what the cycle did.
   * @throws {Error} when another cycle of this mirror is under way.
   */
  cycle(signal?: AbortSignal): Promise<CycleResult> {
    return this.#run(undefined, signal);
  }

  /**
   * A quick cycle over what file-system events named: the folders holding
   * `paths` (relative to the roots), and the whole of any of them that is a
   * folder or that one side lacks. Logs its actions like a full cycle, but no
   * summary.
   *
   * @param paths entry paths events named.
   * @param signal stops the cycle early.
   * @returns what the cycle did.
   */
  partialCycle(paths: ReadonlySet<string>, signal?: AbortSignal): Promise<CycleResult> {
    return this.#run(paths, signal);
  }

  /**
   * Forget what is known of the replica files at `paths` (someone else wrote
   * them): the next cycle compares them again.
   *
   * @param paths entry paths relative to the roots.
   */
  distrustReplica(paths: Iterable<string>): void {
    for (const path of paths) this.#state.index.distrustReplica(path);
  }

  async #run(paths: ReadonlySet<string> | undefined, signal?: AbortSignal): Promise<CycleResult> {
    if (this.#cycling) throw new Error("a cycle of this mirror is under way: await it first");
    this.#cycling = true;
    try {
      return await this.#cycle(paths, signal);
    } finally {
      this.#cycling = false;
    }
  }

  async #cycle(paths: ReadonlySet<string> | undefined, signal?: AbortSignal): Promise<CycleResult> {
    const started = performance.now();
    const tally = emptyTally();
    if (this.#replica.backups !== undefined) tally.backedUp = 0;
    // The rules of this cycle: asked once, so they hold for the whole of it.
    const texts = this.#options.excludeFiles?.();
    if (texts !== undefined && texts !== this.#excludeTexts && texts !== this.#rejectedTexts) {
      await this.#newRules(texts);
    }
    const opened = await this.#open(tally, signal);
    try {
      if (opened !== undefined) await this.#sync(tally, opened, paths, signal);
    } catch (error) {
      // Stopped (SIGINT, SIGTERM) while walking or reading: nothing more is done.
      if (!signal?.aborted) throw error;
    }
    const dryRun = this.#options.dryRun ?? false;
    // A partial (--watch) cycle logs its actions only: one line per change mirrored.
    if (dryRun || (paths === undefined && (eventful(tally) || !this.#summarized))) {
      reportSummary(this.#log, tally, performance.now() - started, dryRun, signal?.aborted);
      if (paths === undefined && !dryRun) this.#summarized = true;
    }
    return Object.freeze({ ...tally });
  }

  /**
   * Find both roots (each found anew: a root given as a symlink follows it);
   * the replica root is made when missing, as an action (a dry run makes
   * none). Undefined when the cycle cannot run (an ERROR says why).
   */
  async #open(tally: Tally, signal?: AbortSignal): Promise<Opened | undefined> {
    let source: RootInfo | undefined, replica: RootInfo | undefined;
    try {
      source = await this.#source.open();
      if (source === undefined) throw new Deno.errors.NotFound("No such file or directory");
    } catch (error) {
      return this.#rootFailed(tally, "Source", this.#source.where, error);
    }
    try {
      replica = await this.#replica.open();
    } catch (error) {
      return this.#rootFailed(tally, "Replica", this.#replica.where, error);
    }
    // Where the replica is, or would be made: never inside the source, nor around it.
    const replicaPath = replica?.path ?? this.#replica.path;
    if (source.path !== undefined && replicaPath !== undefined) {
      if (isWithin(source.path, replicaPath) || isWithin(replicaPath, source.path)) {
        const why = new Error("it now overlaps the source folder");
        return this.#rootFailed(tally, "Replica", this.#replica.where, why);
      }
    }
    let made = false;
    if (replica === undefined) {
      const root = await this.#apply({ op: "root", path: "" }, tally, signal);
      if (this.#options.dryRun) return { source, replica: undefined };
      if (root !== "done") return undefined;
      replica = await this.#replica.open();
      if (replica === undefined) return undefined;
      made = true;
    }
    const at = replica.path ?? replica.id;
    const changed = this.#replicaAt !== undefined && this.#replicaAt !== at;
    this.#replicaAt = at;
    if (changed || made) {
      const taken = await this.#options.onReplicaChanged?.();
      if (taken !== undefined) {
        return this.#rootFailed(tally, "Replica", this.#replica.where, new Error(taken));
      }
    }
    return { source, replica };
  }

  #rootFailed(tally: Tally, side: string, path: string, error: unknown): undefined {
    tally.failed++;
    tally.refused = `${side.toLowerCase()} folder ${path} is not usable (${
      reason(asError(error))
    })`;
    this.#log.error(`${side} folder {path} is not usable ({reason}); nothing was done.`, {
      action: "read",
      path,
      reason: reason(asError(error)),
    });
    return undefined;
  }

  async #sync(
    tally: Tally,
    opened: Opened,
    paths: ReadonlySet<string> | undefined,
    signal?: AbortSignal,
  ): Promise<void> {
    // Before the walk: finding out the owners may write in the replica root
    // (its mtime is then read again).
    const probed = this.#ownerPolicy === undefined;
    const owners = await this.#owners(opened.replica === undefined);
    if (probed && owners !== undefined && opened.replica !== undefined) {
      const entry = await this.#replica.stat("");
      if (entry?.kind === "dir") opened = { ...opened, replica: { ...opened.replica, entry } };
    }
    const scope = paths === undefined ? undefined : await this.#scope(paths, tally);
    if (scope?.length === 0) return;
    await this.#walk(tally, opened, owners, scope, signal);
  }

  /**
   * What a partial cycle walks for the paths events named: the folder
   * holding each one, and each one that is a folder, walked whole. A folder
   * that is not a folder in both trees (new, removed, renamed, of another
   * type) is walked from the nearest folder above it that is: its listing
   * makes, removes or replaces it whole. Excluded folders are left out, and
   * so is any folder below one that is walked whole.
   */
  async #scope(paths: ReadonlySet<string>, tally: Tally): Promise<ScopeFolder[]> {
    const exclude = await this.#excluder(tally);
    const folderIn = async (tree: TreeReader, path: string) => {
      try {
        const entry = await tree.stat(path);
        return entry?.kind === "dir" ? entry : undefined;
      } catch {
        return undefined; // cannot be examined: walked from above
      }
    };
    const wanted = new Map<string, boolean>(); // path -> deep
    for (const path of paths) {
      const candidates: [string, boolean][] = [[path === "" ? "" : parentOf(path), false]];
      if (path !== "") candidates.push([path, true]);
      for (let [dir, deep] of candidates) {
        if (deep && (await folderIn(this.#source, dir)) === undefined) continue;
        while (dir !== "") {
          const both = (await folderIn(this.#source, dir)) !== undefined &&
            (await folderIn(this.#replica, dir)) !== undefined;
          if (both) break;
          dir = parentOf(dir);
          deep = false;
        }
        wanted.set(dir, (wanted.get(dir) ?? false) || deep);
      }
    }
    const deepOnes = new Set([...wanted].filter(([, deep]) => deep).map(([dir]) => dir));
    const scope: ScopeFolder[] = [];
    for (const dir of [...wanted.keys()].sort(comparePaths)) {
      if (hasAncestorIn(dir, deepOnes)) continue;
      if (dir !== "" && isExcludedFolder(exclude, dir)) continue;
      const source = await folderIn(this.#source, dir),
        replica = await folderIn(this.#replica, dir);
      if (source === undefined || replica === undefined) continue; // gone meanwhile
      scope.push({ path: dir, source, replica, deep: wanted.get(dir)! });
    }
    return scope;
  }

  /**
   * One cycle: both trees walked folder by folder (`march.ts`), whole, or
   * (`scope`: a partial cycle of `--watch`) only the folders given; then, in
   * one place, what waits for the end of the walk: the deletion guards,
   * removals, type changes and folder attributes (deepest first); then what
   * is remembered. Only a full cycle computes the tree digest, sweeps the
   * index and saves the state.
   */
  async #walk(
    tally: Tally,
    opened: Opened,
    owners: OwnerPolicy | undefined,
    scope: readonly ScopeFolder[] | undefined,
    signal?: AbortSignal,
  ): Promise<void> {
    const state = this.#state, index = state.index;
    const dryRun = this.#options.dryRun ?? false;
    const full = scope === undefined;
    const observedAt = Date.now();
    // What a full cycle deletes or overwrites is kept in a folder of its own; a partial
    // cycle adds to the last full cycle's.
    if (full || this.#backupFolder === undefined) {
      this.#backupFolder = cycleFolderOf(new Date(observedAt));
    }
    const digests = dryRun || !full
      ? undefined
      : new FolderDigests(index, observedAt, (entry) => this.#replica.learnsMd5?.(entry) ?? false);
    const tempsLeft: string[] = [];
    const progress = dryRun || !this.#options.progress ? undefined : this.#options.progress();
    // MD5s of files whose copy passed their bytes through the program (for the digest).
    const learnt = new Map<string, string>();
    const applier = this.#applier(tally, signal, {
      sourceRoot: opened.source.path ?? "",
      owners,
      observedAt,
      tempsLeft,
      batches: "auto",
      ...(progress ? { onCopyEnded: (bytes: number) => progress.advance(bytes) } : {}),
      onOutcome: (outcome) => {
        if (outcome.status === "done" && outcome.md5) learnt.set(outcome.action.path, outcome.md5);
      },
    });
    const writes = this.#options.writes;
    const written: string[] = [];
    const planned = (actions: readonly Action[]) => {
      for (const action of actions) if (action.op === "copy") progress?.add(action.source.size);
    };
    const apply = async (action: Action) => {
      if (this.#pausedCopy(action, tally)) return undefined;
      if (writes) {
        const paths = action.op === "move" ? [action.from, action.path] : [action.path];
        writes.writing(paths);
        written.push(...paths);
      }
      return await applier.apply(action);
    };
    const exclude = await this.#excluder(tally);
    const device = Number(opened.source.id.split(":")[0]);
    const debug = this.#log.isEnabledFor("debug");
    const march = new March({
      trees: { source: this.#source, replica: this.#replica },
      roots: opened.replica
        ? { source: opened.source.entry, replica: opened.replica.entry }
        : { source: opened.source.entry },
      exclude,
      isTemp: (name) => this.#isTemp(name),
      index,
      moves: new MoveFinder({
        trees: { source: this.#source, replica: this.#replica },
        index,
        ...(Number.isFinite(device) ? { device } : {}),
        ...(exclude ? { exclude } : {}),
        ...(signal ? { signal } : {}),
      }),
      owners,
      observedAt,
      countDeletes: this.#options.maxDelete !== undefined,
      ...(state.recheckSince === undefined ? {} : { recheckSince: state.recheckSince }),
      ...(digests ? { digests } : {}),
      ...(signal ? { signal } : {}),
      ...(this.#replica.link
        ? {
          links: new HardLinks({
            trees: { source: this.#source, replica: this.#replica },
            index,
            observedAt,
            memory: this.#linkGroups,
            ...(full ? {} : { changedSince: this.#lastFullAt }),
            ...(exclude ? { exclude } : {}),
            ...(signal ? { signal } : {}),
          }),
        }
        : {}),
      apply,
      onPlanned: planned,
      onProblem: (side, problem) => {
        reportProblem(this.#log, side, problem);
        tally.failed++;
      },
      ...(writes?.folder ? { onFolder: writes.folder.bind(writes) } : {}),
      onSpecial: (path) => tally.warnings += this.#warnAboutSpecialFile(path),
      onUnreadable: (path, error) => tally.warnings += this.#warnUnreadable(path, error),
      ...(debug
        ? { onUnchanged: (path: string, entry: Entry) => this.#reportUnchanged(path, entry) }
        : {}),
    });
    let result;
    try {
      result = await march.run(opened.replica !== undefined, scope);
      if (full && result.complete && !dryRun) this.#lastFullAt = observedAt;
      index.settle(); // the pairs the source no longer has (moves took what they needed)
      // The deletion guards see everything the walk would delete, before anything is.
      const verdict = deletionGuard({
        recorded: state.sourceRoot,
        sourceId: opened.source.id,
        sourceEntries: result.sourceEntries,
        replicaEntries: result.replicaEntries,
        full,
        deletes: result.deletes,
        acceptEmptySource: this.#options.acceptEmptySource ?? false,
        ...(this.#options.maxDelete === undefined ? {} : { maxDelete: this.#options.maxDelete }),
      });
      if (verdict.record && !dryRun) state.sourceRoot = verdict.record;
      if (verdict.refusal) this.#reportRefusal(tally, verdict.refusal);
      const attributes = [...result.attributes];
      if (verdict.deletions) {
        for (const action of [...result.removals, ...result.keeps]) {
          if (signal?.aborted) break;
          await apply(action);
        }
        planned(result.blocked.map(({ write }) => write));
        progress?.known();
        attributes.push(...await march.afterRemovals(result.blocked));
      } else progress?.known();
      // The other names of files with several names, once their files are written and in
      // place (a new folder is filled under a temp name: its files are not at their paths
      // until it is put in place, and a name is linked only to a file that is there).
      if (!dryRun) await applier.finish();
      const links = await march.links();
      planned(links.writes);
      for (const action of links.writes) {
        if (signal?.aborted) break;
        await apply(action);
      }
      if (!dryRun && !signal?.aborted) await march.linked(full);
      if (links.incomplete) writes?.fullCycleWanted?.();
      const setting = new Set(attributes.map((action) => action.path));
      attributes.push(...links.folders.filter((action) => !setting.has(action.path)));
      // Deepest first, after every write.
      attributes.sort((a, b) => comparePaths(b.path, a.path));
      for (const action of attributes) {
        if (signal?.aborted) break;
        await apply(action);
      }
    } finally {
      await applier.finish();
      await progress?.stop();
      writes?.written(written);
    }

    // Remember (a partial cycle: what the index learnt, saved with the next full cycle).
    if (dryRun || signal?.aborted || !full) return;
    const changed = tally.copied + tally.updated + tally.linked + tally.attributes +
        tally.removed + tally.moved + tally.created + tally.links > 0;
    if ((changed || !this.#summarized) && digests) {
      try {
        await this.#treeDigest(tally, result, digests, learnt, observedAt, signal);
      } catch (error) {
        if (!signal?.aborted) throw error;
      }
    }
    if (result.complete) {
      index.sweep();
      state.rechecked(); // what an unclean stop left to check was compared
    }
    if (!signal?.aborted) state.tempsSwept(tempsLeft);
    if (!this.#options.savesAtEnd) await this.saveState();
    if (!signal?.aborted) await this.#pruneBackups();
  }

  /** Whether `name` is one of the program's temp files in the replica. */
  #isTemp(name: string): boolean {
    return this.#replica.isTemp?.(name) ?? this.#state.isTemp(name);
  }

  /** `--backup-keep`: remove the cycle folders older than the newest ones kept. */
  async #pruneBackups(): Promise<void> {
    const keep = this.#options.backupKeep, backups = this.#replica.backups;
    if (keep === undefined || backups === undefined) return;
    let names: string[];
    try {
      names = (await backups.folders()).filter(isCycleFolder).sort();
    } catch (error) {
      this.#log.warn("Cannot list the backup folder {path} ({reason}); no backup was removed.", {
        action: "backup",
        path: backups.where,
        reason: reason(asError(error)),
      });
      return;
    }
    for (const name of names.slice(0, Math.max(0, names.length - keep))) {
      const path = joinPath(backups.where, name);
      try {
        await backups.drop(name);
        this.#log.info("Backup folder {path} has been removed (--backup-keep {keep}).", {
          action: "backup",
          path,
          keep,
        });
      } catch (error) {
        this.#log.warn("Could not remove backup folder {path}: {reason}.", {
          action: "backup",
          path,
          reason: reason(asError(error)),
        });
      }
    }
  }

  /**
   * The source's tree digest for the summary, or why it is not computed: a
   * source not read in full has none; MD5s a copy learnt are looked up; the
   * rest are read within the budget (and known from then on); more than that
   * is said once a run (later summaries leave the digest out until it can be
   * computed).
   */
  async #treeDigest(
    tally: Tally,
    result: MarchResult,
    digests: FolderDigests,
    learnt: ReadonlyMap<string, string>,
    observedAt: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    if (!result.complete) {
      tally.digestMissing = "the source could not be read in full";
      return;
    }
    const source = this.#source, index = this.#state.index;
    const found = await digests.finish(
      result.digest,
      async (path, entry) => {
        try {
          const md5 = await source.md5(path, entry.size, signal);
          index.recordSource(path, entry, md5, observedAt);
          return md5;
        } catch (error) {
          if (signal?.aborted) throw error;
          return undefined; // unreadable or gone: the digest says so
        }
      },
      (path, entry) =>
        learnt.get(path) ?? (index.knows(path, "source", entry) ? index.md5(path) : undefined),
    );
    if (found === "unreadable") tally.digestMissing = "a source file could not be read";
    else if (found !== "too much") tally.digest = found;
    else if (!this.#saidTooMuch) {
      this.#saidTooMuch = true;
      tally.digestMissing = "too much to read; --verify computes it";
    }
  }

  /** Apply one action (the replica root), report and count its outcome; how it ended. */
  async #apply(
    action: Action,
    tally: Tally,
    signal: AbortSignal | undefined,
  ): Promise<Outcome["status"] | undefined> {
    let status: Outcome["status"] | undefined;
    const applier = this.#applier(tally, signal, {
      sourceRoot: "",
      observedAt: 0,
      tempsLeft: [],
      batches: false,
      onOutcome: (outcome) => status = outcome.status,
    });
    await applier.apply(action);
    await applier.finish();
    return status;
  }

  /** An applier whose outcomes are reported, counted, and learnt from (the mirror's own writes). */
  #applier(
    tally: Tally,
    signal: AbortSignal | undefined,
    context: {
      readonly sourceRoot: string;
      readonly owners?: OwnerPolicy | undefined;
      readonly observedAt: number;
      readonly tempsLeft: string[];
      readonly batches: boolean | "auto";
      readonly onCopyEnded?: (bytes: number) => void;
      readonly onOutcome?: (outcome: Outcome) => void;
    },
  ): Applier {
    const index = this.#state.index;
    const folder = this.#backupFolder;
    return new Applier(this.#replica, {
      sourceRoot: context.sourceRoot,
      ...(folder === undefined || this.#replica.backups === undefined ? {} : {
        backup: {
          folder,
          skip: (path: string) => this.#isTemp(baseName(path)),
          ...(this.#options.backupWithin === undefined
            ? {}
            : { within: this.#options.backupWithin }),
        },
      }),
      dryRun: this.#options.dryRun ?? false,
      batches: context.batches,
      ...(context.owners ? { owners: context.owners } : {}),
      ...(signal ? { signal } : {}),
      ...(context.onCopyEnded ? { onCopyEnded: context.onCopyEnded } : {}),
      onOutcome: (given) => {
        const outcome = this.#paced(given);
        context.onOutcome?.(outcome);
        if (outcome.status === "done") learnFromWrite(index, outcome, context.observedAt);
        else if (
          outcome.action.op === "remove" && this.#state.isTemp(baseName(outcome.action.path))
        ) {
          context.tempsLeft.push(baseName(outcome.action.path));
        }
        // Said once: later cycles leave it out quietly (see `#excluder`).
        if (outcome.status === "skipped" && outcome.final) {
          this.#warnedRefused.add(outcome.action.path);
        }
        if (outcome.status === "skipped" && outcome.action.op === "keep") {
          // A lasting conflict (a kept folder where the source has a file): said once.
          if (this.#warnedKept.has(outcome.action.path)) return;
          this.#warnedKept.add(outcome.action.path);
        }
        reportOutcome(this.#log, outcome, this.#replica.where);
        count(tally, outcome);
      },
    });
  }

  /** A copy of a file that keeps changing, while its pause lasts: left behind, unread. */
  #pausedCopy(action: Action, tally: Tally): boolean {
    if (action.op !== "copy" || !this.#changing.waiting(action.path)) return false;
    tally.leftBehind++;
    return true;
  }

  /** A copy skipped because its source changed meanwhile is paused, longer each time. */
  #paced(outcome: Outcome): Outcome {
    if (outcome.action.op !== "copy") return outcome;
    if (outcome.status === "done") this.#changing.succeeded(outcome.action.path);
    if (outcome.status !== "skipped" || !outcome.changed) return outcome;
    const retryInMs = this.#changing.failed(outcome.action.path);
    this.#options.writes?.paused?.(outcome.action.path, retryInMs);
    return { ...outcome, retryInMs };
  }

  /**
   * Write the state file if anything in it changed; a failure (a full disk)
   * is one WARNING and leaves the previous state in place.
   *
   * @param options `clean`: the run ends cleanly, and the state says so (see
   *   {@link MirrorState.endCleanly}).
   */
  async saveState(options: { readonly clean?: boolean } = {}): Promise<void> {
    try {
      if (options.clean) await this.#state.endCleanly();
      else await this.#state.save();
    } catch (error) {
      this.#log.warn(
        "Could not save the state file ({reason}); the next run may read more files.",
        { action: "state", reason: reason(asError(error)) },
      );
    }
  }

  #reportRefusal(tally: Tally, refusal: GuardRefusal): void {
    tally.failed++;
    tally.refused = refusal.kind === "unmounted"
      ? "the source is empty and no longer the folder it was: nothing was deleted"
      : refusal.kind === "unrecorded"
      ? "the source is empty and no earlier cycle recorded it: nothing was deleted"
      : `${refusal.count} deletions, more than --max-delete ${refusal.limit}: nothing was deleted`;
    const accept = " If the source is meant to be empty, run once with --accept-empty-source.";
    if (refusal.kind === "unmounted") {
      this.#log.error(
        "Source folder {path} is empty and is no longer the folder it was (its device or " +
          "inode changed: an unmounted disk?); nothing was deleted." + accept,
        { action: "guard", path: this.#source.where },
      );
    } else if (refusal.kind === "unrecorded") {
      this.#log.error(
        "Source folder {path} is empty, the replica is not, and no earlier cycle recorded " +
          "this folder as the source (an unmounted disk? a first run, or a lost or damaged " +
          "state file?); nothing was deleted." + accept,
        { action: "guard", path: this.#source.where },
      );
    } else {
      this.#log.error(
        "This cycle would delete {count} replica entries, more than --max-delete {limit}; " +
          "nothing was deleted.",
        { action: "guard", count: refusal.count, limit: refusal.limit },
      );
    }
  }

  /** The DEBUG line of a source entry this cycle leaves alone. */
  #reportUnchanged(path: string, entry: Entry): void {
    if (entry.kind === "other") return;
    this.#log.debug(`${NOUN[entry.kind]} {path} is unchanged.`, { action: "none", path });
  }

  /**
   * What a cycle leaves out: the excluded paths, and the source entries the
   * replica cannot hold (said once per path, a WARNING counted in `tally`).
   */
  async #excluder(tally: Tally): Promise<ExcludeMatcher | undefined> {
    const excluded = await this.#exclude;
    const replica = this.#replica;
    if (replica.refuses === undefined) return excluded;
    return (path, isDir) => {
      if (excluded?.(path, isDir)) return true;
      const why = replica.refuses!(path, isDir ? "dir" : "file");
      if (why === undefined) return false;
      if (!this.#warnedRefused.has(path)) {
        this.#warnedRefused.add(path);
        tally.warnings++;
        this.#log.warn("File {path} is not mirrored: {why}.", { action: "skip", path, why });
      }
      return true;
    };
  }

  /**
   * A source folder that may not be read is left out, its replica twin left
   * alone; said once per path and run (1 if said now).
   */
  #warnUnreadable(path: string, error: Error): number {
    if (this.#warnedUnreadable.has(path)) return 0;
    this.#warnedUnreadable.add(path);
    this.#log.warn(
      "Source folder {path} may not be read ({reason}); it is left out, and its replica twin " +
        "is neither read nor changed.",
      { action: "skip", path, reason: reason(error) },
    );
    return 1;
  }

  /** FIFOs, sockets and devices are never opened or mirrored; said once per path (1 if said now). */
  #warnAboutSpecialFile(path: string): number {
    if (this.#warnedSpecial.has(path)) return 0;
    this.#warnedSpecial.add(path);
    this.#log.warn("Special file {path} (FIFO, socket or device) is skipped.", {
      action: "skip",
      path,
    });
    return 1;
  }

  /**
   * The owners this mirror keeps: found out at its first cycle that writes,
   * by asking the replica (a local folder makes and removes one temp file in
   * its root); none in a dry run, which writes nothing.
   */
  async #owners(replicaMissing: boolean): Promise<OwnerPolicy | undefined> {
    if (this.#ownerPolicy !== undefined || this.#options.dryRun || replicaMissing) {
      return this.#ownerPolicy;
    }
    const self = await this.#replica.probeOwner?.();
    if (self !== undefined) {
      this.#ownerPolicy = new OwnerPolicy(self, this.#state.ownerDenials(self.uid));
    }
    return this.#ownerPolicy;
  }
}

/**
 * The mirror's own writes are known: a file it copied needs no reading next
 * cycle (on either side), and one whose attributes it set keeps its pair.
 */
function learnFromWrite(index: PairIndex, outcome: Outcome, observedAt: number): void {
  if (outcome.status !== "done") return;
  const { action, replicaKey } = outcome;
  if (action.op === "move") {
    // What was known at the old path goes to the new one (a file: with both keys as they are now).
    if (action.kind === "dir") index.moveFolder(action.from, action.path);
    else if (replicaKey === undefined) index.forget(action.from);
    else index.movePair(action.from, action.path, action.source, replicaKey, observedAt);
    return;
  }
  if (action.op !== "copy" && action.op !== "touch") return;
  // No key: the replica file was found changed by someone else meanwhile.
  if (replicaKey === undefined) index.distrustReplica(action.path);
  else if (action.op === "copy") {
    index.recordCopy(action.path, action.source, replicaKey, observedAt, outcome.md5);
  } else index.updateReplica(action.path, replicaKey);
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

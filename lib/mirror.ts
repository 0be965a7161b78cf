/**
 * One mirror cycle: scan both trees -> compare contents -> plan -> apply ->
 * report. The only module that knows every stage.
 *
 * @module
 */
import type { Logger } from "npm:@logtape/logtape@^2.4.2";
import { applyPlan, type Outcome, type Roots } from "./apply.ts";
import type { Copier } from "./copy_worker.ts";
import { findChangedFiles } from "./compare.ts";
import { type Disk, realDisk } from "./disk.ts";
import { asError, reason } from "./error.ts";

import { type ExcludeMatcher, excludeMatcher } from "./exclude.ts";
import { type Action, deletedEntries, plan } from "./plan.ts";
import {
  count,
  emptyTally,
  eventful,
  reportOutcome,
  reportProblem,
  reportSummary,
  type Tally,
} from "./report.ts";
import { type Scan, scanAround, scanTree } from "./scan.ts";
import { type Entry, entryFromInfo, NOUN, statKey, type Tree } from "./entry.ts";
import { Hasher } from "./hash.ts";
import type { PairIndex } from "./pair_index.ts";
import { startProgress } from "./progress.ts";
import type { ConsoleTap } from "./log.ts";
import { MirrorState } from "./state.ts";
import { OwnerPolicy } from "./owners.ts";
import { PackedTree } from "./tree.ts";
import { OwnWrites } from "./watch.ts";
import { isWithin, joinPath, realPathOf } from "./paths.ts";

/**
 * The most a cycle reads only to put the source's tree digest in its summary;
 * a cycle that copied more says the digest was not computed (`--verify`
 * computes it at any size).
 */
export const DIGEST_BUDGET = { bytes: 64 * 1024 * 1024, files: 2000 } as const;

/** Settings of a {@link Mirror} beyond its roots. */
export interface MirrorOptions {
  /** A cycle that would delete more replica entries than this deletes none.
   * Default: no limit. */
  readonly maxDelete?: number;
  /** Scan, compare and plan, log what would be done, change nothing (not even
   * create the replica folder or save the state). Default `false`. */
  readonly dryRun?: boolean;
  /** gitignore-style patterns of paths neither copied nor deleted. Default none. */
  readonly exclude?: readonly string[];
  /** Show a progress bar on stderr when it is a terminal and there is a lot to
   * copy, with the console's log lines sent through this tap meanwhile.
   * Default: no progress bar. */
  readonly progress?: ConsoleTap;
  /** The replica is being watched: remember what each cycle writes, so that
   * {@link Mirror.splitReplicaEvents} can tell its own events from others'.
   * Default `false`. */
  readonly watchingReplica?: boolean;
  /** What the mirror remembers between cycles and runs (see `state.ts`); it
   * is saved after each full cycle. Default: a state in memory only. */
  readonly state?: MirrorState;
  /** Called when a cycle finds the replica folder is not the one the last
   * cycle wrote (it made it again, or the replica path, a symlink, now points
   * elsewhere), before it writes into it; a message returned says why the
   * cycle must not write there (another mirror holds it). Default: nothing. */
  readonly onReplicaChanged?: () => Promise<string | undefined>;
  /** Starts a copy worker (tests give a broken one). Default: `copy_worker.ts`'s. */
  readonly makeCopyWorker?: () => Copier;
}

/** How many files the actions copy, and how many bytes. */
function copyTotals(actions: readonly Action[]): [number, number] {
  let files = 0, bytes = 0;
  for (const action of actions) {
    if (action.op !== "copy") continue;
    files++;
    bytes += action.source.size;
  }
  return [files, bytes];
}

function emptyScan(): Scan {
  return {
    tree: new PackedTree(),
    problems: [],
    incomplete: new Set(),
    temps: [],
    holdsExcluded: new Set(),
    startedAt: Date.now(),
  };
}

/** Keeps one replica in step with one source, cycle after cycle. */
export class Mirror {
  /** The roots as given (a symlink stays one). */
  readonly #given: Roots;
  /** The roots resolved (real paths) by the current or last cycle. */
  #roots: Roots;
  #resolvedOnce = false;
  readonly #disk: Disk;
  readonly #log: Logger;
  readonly #options: MirrorOptions;
  readonly #hasher = new Hasher();
  readonly #state: MirrorState;
  readonly #warnedSpecial = new Set<string>();
  readonly #warnedKept = new Set<string>();
  readonly #ownWrites = new OwnWrites();
  /** Which owners are kept, once found out (see {@link #owners}). */
  #ownerPolicy: OwnerPolicy | undefined;
  /** The copy worker failed once: later cycles copy on the main thread. */
  #workerFailed = false;

  /** Loaded with the first cycle. */
  readonly #exclude: Promise<ExcludeMatcher | undefined>;

  constructor(roots: Roots, disk: Disk, log: Logger, options: MirrorOptions = {}) {
    this.#given = roots;
    this.#roots = roots;
    this.#disk = disk;
    this.#log = log;
    this.#options = options;
    this.#state = options.state ?? MirrorState.inMemory(roots);
    this.#exclude = excludeMatcher(options.exclude ?? []);
    this.#exclude.catch(() => {}); // a failure to load surfaces where a cycle awaits it
  }

  /** The roots as the last cycle resolved them (real paths). */
  get resolvedRoots(): Roots {
    return this.#roots;
  }

  /** Bytes of file content read (to compare, or for a digest) since this mirror was made. */
  get hashedBytes(): number {
    return this.#hasher.hashedBytes;
  }

  /**
   * Run one cycle. Never throws for a file-system problem: each one is logged
   * and counted in the returned tally's `failed`.
   */
  cycle(signal?: AbortSignal): Promise<Tally> {
    return this.#run(undefined, signal);
  }

  /**
   * A quick cycle over what file-system events named: the folders holding
   * `paths` (relative to the source root), and the whole of any of them that
   * is a folder or that the replica lacks. Logs like a full cycle.
   */
  partialCycle(paths: ReadonlySet<string>, signal?: AbortSignal): Promise<Tally> {
    return this.#run(paths, signal);
  }

  async #run(paths: ReadonlySet<string> | undefined, signal?: AbortSignal): Promise<Tally> {
    const started = performance.now();
    const tally = emptyTally();
    let roots = this.#checkRoots(tally);
    const taken = roots?.changed ? await this.#options.onReplicaChanged?.() : undefined;
    if (taken !== undefined) {
      roots = this.#rootFailed(tally, "Replica", this.#given.replica, new Error(taken));
    }
    try {
      if (roots !== undefined) await this.#sync(tally, roots, paths, signal);
    } catch (error) {
      // Stopped (SIGINT, SIGTERM) while scanning or reading: nothing more is done.
      if (!signal?.aborted) throw error;
    }
    const dryRun = this.#options.dryRun ?? false;
    // A partial (--watch) cycle logs its actions only: one line per change mirrored.
    if (dryRun || (paths === undefined && eventful(tally))) {
      reportSummary(this.#log, tally, performance.now() - started, dryRun);
    }
    return tally;
  }

  /**
   * The source must be a readable folder; the replica is created when missing.
   * Returns the source root's identity (device and inode) and whether the
   * replica is missing (in a dry run, which creates nothing), or undefined
   * when the cycle cannot run.
   */
  #checkRoots(
    tally: Tally,
  ): { sourceId: string; replicaMissing: boolean; changed?: boolean } | undefined {
    // The paths as given are resolved again every cycle: a source given as a
    // symlink (`current -> release-2`) follows it when it is switched.
    const given = this.#given;
    let source: string, replica: string, sourceId: string;
    try {
      source = Deno.realPathSync(given.source);
      const info = this.#expectFolder(source);
      sourceId = `${info.dev}:${info.ino}`;
    } catch (error) {
      return this.#rootFailed(tally, "Source", given.source, error);
    }
    try {
      replica = realPathOf(given.replica);
    } catch (error) {
      return this.#rootFailed(tally, "Replica", given.replica, error);
    }
    if (isWithin(source, replica) || isWithin(replica, source)) {
      const why = new Error(`it now overlaps the ${source === replica ? "" : "other "}folder`);
      return this.#rootFailed(tally, "Replica", given.replica, why);
    }
    const moved = this.#resolvedOnce && replica !== this.#roots.replica;
    this.#roots = { source, replica };
    this.#resolvedOnce = true;
    try {
      this.#expectFolder(replica);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        return this.#rootFailed(tally, "Replica", given.replica, error);
      }
      const path = given.replica;
      if (this.#options.dryRun) {
        tally.planned++;
        this.#log.info("Would create replica folder {path}.", { action: "mkdir", path });
        return { sourceId, replicaMissing: true };
      }
      try {
        this.#disk.mkdir(replica, true);
      } catch (error) {
        return this.#rootFailed(tally, "Replica", path, error);
      }
      this.#log.info("Replica folder {path} has been created.", { action: "mkdir", path });
      return { sourceId, replicaMissing: false, changed: true };
    }
    return { sourceId, replicaMissing: false, changed: moved };
  }

  #expectFolder(path: string): Deno.FileInfo {
    const info = this.#disk.lstat(path);
    if (!info.isDirectory) throw new Error("not a folder");
    return info;
  }

  #rootFailed(tally: Tally, side: string, path: string, error: unknown): undefined {
    tally.failed++;
    this.#log.error(`${side} folder {path} is not usable ({reason}); nothing was done.`, {
      action: "read",
      path,
      reason: reason(asError(error)),
    });
    return undefined;
  }

  async #sync(
    tally: Tally,
    { sourceId, replicaMissing }: { sourceId: string; replicaMissing: boolean },
    paths: ReadonlySet<string> | undefined,
    signal?: AbortSignal,
  ): Promise<void> {
    const { source: sourceRoot, replica: replicaRoot } = this.#roots;
    const exclude = await this.#exclude;
    const state = this.#state;
    const isTemp = (name: string) => state.isTemp(name);
    const full = paths === undefined;
    // Before the walk: the probe writes in the replica root.
    const owners = this.#owners(replicaMissing);
    const scanned = full
      ? {
        source: await scanTree(sourceRoot, { exclude, signal }),
        replica: await scanTree(replicaRoot, { exclude, isTemp, signal }),
      }
      : await scanAround(this.#roots, paths, exclude, isTemp, signal);
    const source = scanned.source;
    const replica = replicaMissing ? emptyScan() : scanned.replica;
    for (const problem of source.problems) reportProblem(this.#log, "source", problem);
    for (const problem of replica.problems) reportProblem(this.#log, "replica", problem);
    tally.failed += source.problems.length + replica.problems.length;
    tally.warnings += this.#warnAboutSpecialFiles(source.tree);

    const index = state.index;
    const comparison = await findChangedFiles(
      this.#roots,
      source,
      replica,
      index,
      this.#hasher,
      signal,
    );
    for (const problem of comparison.problems) reportProblem(this.#log, "source", problem);
    tally.failed += comparison.problems.length;

    const inputs = {
      changed: comparison.changed,
      incomplete: source.incomplete,
      holdsExcluded: replica.holdsExcluded,
      temps: replica.temps,
      ...(owners ? { owners } : {}),
      ...(source.root && replica.root
        ? { roots: { source: source.root, replica: replica.root } }
        : {}),
    };
    let actions = plan(source.tree, replica.tree, inputs);
    if (!this.#deletionsAllowed(tally, sourceId, source.tree, replica.tree, actions, full)) {
      actions = plan(source.tree, replica.tree, { ...inputs, deletions: false });
    }
    const tempsLeft: string[] = [];
    // What this cycle writes, remembered only for a replica watcher.
    const remember = (this.#options.watchingReplica ?? false) && !this.#options.dryRun;
    const written = remember ? actions.map((action) => action.path) : [];
    if (remember) this.#ownWrites.writing(written);
    if (this.#log.isEnabledFor("debug")) this.#reportUnchanged(source.tree, actions);
    const progress = this.#options.progress && !this.#options.dryRun
      ? await startProgress(...copyTotals(actions), this.#options.progress)
      : undefined;
    await applyPlan(actions, this.#roots, {
      disk: this.#disk,
      dryRun: this.#options.dryRun ?? false,
      temps: state.temps,
      ...(owners ? { owners } : {}),
      copyWorker: (this.#disk === realDisk || this.#options.makeCopyWorker !== undefined) &&
        !this.#workerFailed,
      ...(this.#options.makeCopyWorker ? { makeWorker: this.#options.makeCopyWorker } : {}),
      onWorkerFailure: (error) => {
        this.#workerFailed = true;
        this.#log.warn(
          "The copy worker stopped ({reason}); files are copied without it from now on.",
          { action: "worker", reason: reason(error) },
        );
      },
      signal,
      onOutcome: (outcome) => {
        if (outcome.status === "done") learnFromWrite(index, outcome, source.startedAt);
        else if (outcome.action.op === "remove" && isTemp(baseName(outcome.action.path))) {
          tempsLeft.push(baseName(outcome.action.path));
        }
        if (outcome.status === "skipped" && outcome.action.op === "keep") {
          // A lasting conflict (a kept folder where the source has a file): said once.
          if (this.#warnedKept.has(outcome.action.path)) return;
          this.#warnedKept.add(outcome.action.path);
        }
        reportOutcome(this.#log, outcome);
        count(tally, outcome);
      },
      onCopyEnded: (bytes) => progress?.advance(bytes),
    }).finally(() => {
      progress?.stop();
      if (remember) this.#ownWrites.written(written, (path) => this.#replicaState(path));
    });
    if (!full || this.#options.dryRun) return; // saved by full, real cycles
    if (tally.copied + tally.updated + tally.removed + tally.created > 0 && !signal?.aborted) {
      tally.digest = await this.#sourceDigest(source, index, comparison.sourceMd5s, signal) ??
        "not computed";
    }
    index.retain((path) => source.tree.get(path)?.kind === "file");
    if (replica.problems.length === 0 && !signal?.aborted) state.tempsSwept(tempsLeft);
    await this.saveState();
  }

  /**
   * Write the state file if anything in it changed; a failure (a full disk)
   * is one WARNING and leaves the previous state in place.
   */
  async saveState(): Promise<void> {
    try {
      await this.#state.save();
    } catch (error) {
      this.#log.warn(
        "Could not save the state file ({reason}); the next run may read more files.",
        { action: "state", reason: reason(asError(error)) },
      );
    }
  }

  /**
   * Sort paths a replica watcher reported into those someone else changed and
   * those this mirror is writing or just wrote (see {@link OwnWrites}). A
   * path whose content was `written` in place is someone else's whenever it
   * is reported: the mirror writes contents under temp names only.
   */
  splitReplicaEvents(
    paths: Iterable<string>,
    written: ReadonlySet<string> = new Set(),
  ): { foreign: string[]; own: string[] } {
    const split = this.#ownWrites.split(paths);
    const foreign = [...split.foreign, ...split.own.filter((path) => written.has(path))];
    const own = split.own.filter((path) => !written.has(path));
    // Someone else wrote there: compare the content, whatever its stat key says.
    for (const path of foreign) this.#state.index.distrustReplica(path);
    return { foreign, own };
  }

  /**
   * Of `paths`, events of this mirror's own writes looked at once their window
   * is over, those that are no longer as the mirror left them (someone else's
   * edit right after the mirror's write).
   */
  changedSinceWritten(paths: Iterable<string>): string[] {
    return this.#ownWrites.changed(paths, (path) => this.#replicaState(path));
  }

  /** A replica path's stat key and mode, or "absent". */
  #replicaState(path: string): string {
    try {
      const info = Deno.lstatSync(joinPath(this.#roots.replica, path));
      return `${statKey(entryFromInfo(info))}:${info.mode}`;
    } catch {
      return "absent";
    }
  }

  /**
   * The deletion guards. An empty source that is no longer the folder last
   * seen (an unmounted disk shows the empty mount point) deletes nothing, in
   * this run or a later one (the state remembers the source root), and
   * neither does a plan that deletes more than `--max-delete` entries. A
   * partial cycle leaves deletions to the next full cycle when the source
   * root changed.
   */
  #deletionsAllowed(
    tally: Tally,
    sourceId: string,
    source: Tree,
    replica: Tree,
    changes: readonly Action[],
    full: boolean,
  ): boolean {
    const recorded = this.#state.sourceRoot;
    if (recorded !== undefined && recorded.id !== sourceId) {
      if (!full) return false;
      if (recorded.heldEntries && source.size === 0 && replica.size > 0) {
        tally.failed++;
        this.#log.error(
          "Source folder {path} is empty and is no longer the folder it was (its device or " +
            "inode changed: an unmounted disk?); nothing was deleted.",
          { action: "guard", path: this.#given.source },
        );
        return false;
      }
    }
    if (full) this.#state.sourceRoot = { id: sourceId, heldEntries: source.size > 0 };
    const limit = this.#options.maxDelete;
    if (limit === undefined) return true;
    const count = deletedEntries(changes, replica);
    if (count <= limit) return true;
    tally.failed++;
    this.#log.error(
      "This cycle would delete {count} replica entries, more than --max-delete {limit}; " +
        "nothing was deleted.",
      { action: "guard", count, limit },
    );
    return false;
  }

  /**
   * The source's tree digest (see `verify.ts`): file MD5s come from the index
   * where their keys still hold, or from this cycle's comparison; the rest
   * (files copied this cycle) are read here and recorded in the index, so
   * that the next comparison reads only their replica side. Reading is
   * bounded ({@link DIGEST_BUDGET}): a cycle that copied more returns
   * undefined rather than multiply its own cost (MD5 runs at ~450 MB/s, far
   * slower than a kernel copy).
   */
  async #sourceDigest(
    source: Scan,
    index: PairIndex,
    readThisCycle: ReadonlyMap<string, string>,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const inIndex = (path: string, entry: Entry) =>
      index.knows(path, "source", entry) && index.md5(path) !== undefined;
    let unknownBytes = 0, unknownFiles = 0;
    for (const [path, entry] of source.tree) {
      if (entry.kind !== "file" || inIndex(path, entry) || readThisCycle.has(path)) continue;
      unknownBytes += entry.size;
      unknownFiles++;
    }
    if (unknownBytes > DIGEST_BUDGET.bytes || unknownFiles > DIGEST_BUDGET.files) return undefined;
    const { digestLine, treeDigest } = await import("./verify.ts");
    const lines: string[] = [];
    for (const [path, entry] of source.tree) {
      if (entry.kind === "other") continue;
      let md5: string | undefined;
      if (entry.kind === "file") {
        md5 = inIndex(path, entry) ? index.md5(path) : readThisCycle.get(path);
        try {
          md5 ??= await this.#hasher.md5(joinPath(this.#roots.source, path), entry.size, signal);
          index.recordSource(path, entry, md5, source.startedAt);
        } catch {
          if (signal?.aborted) return undefined; // stopped: no digest
          md5 = "?"; // unreadable or gone: the digest says so
        }
      }
      lines.push(digestLine(path, entry, md5));
    }
    return treeDigest(lines);
  }

  /** DEBUG lines for every source entry this cycle leaves alone. */
  #reportUnchanged(tree: Tree, actions: readonly Action[]): void {
    const touched = new Set(actions.map((action) => action.path));
    for (const [path, entry] of tree) {
      if (entry.kind === "other" || touched.has(path)) continue;
      this.#log.debug(`${NOUN[entry.kind]} {path} is unchanged.`, { action: "none", path });
    }
  }

  /** FIFOs, sockets and devices are never opened or mirrored; say so once per path. */
  #warnAboutSpecialFiles(tree: Tree): number {
    let warned = 0;
    for (const [path, entry] of tree) {
      if (entry.kind !== "other" || this.#warnedSpecial.has(path)) continue;
      this.#warnedSpecial.add(path);
      warned++;
      this.#log.warn("Special file {path} (FIFO, socket or device) is skipped.", {
        action: "skip",
        path,
      });
    }
    return warned;
  }

  /**
   * The owners this mirror keeps: found out at its first cycle that writes,
   * by making (and removing) one temp file in the replica root; none in a dry
   * run, which writes nothing.
   */
  #owners(replicaMissing: boolean): OwnerPolicy | undefined {
    if (this.#ownerPolicy !== undefined || this.#options.dryRun || replicaMissing) {
      return this.#ownerPolicy;
    }
    const self = OwnerPolicy.probe(this.#roots.replica, this.#state.temps.next());
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
  if (action.op !== "copy" && action.op !== "touch") return;
  // No key: the replica file was found changed by someone else meanwhile.
  if (replicaKey === undefined) index.distrustReplica(action.path);
  else if (action.op === "copy") {
    index.recordCopy(action.path, action.source, replicaKey, observedAt);
  } else index.updateReplica(action.path, replicaKey);
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

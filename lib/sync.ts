/**
 * One mirror cycle: scan both trees -> compare contents -> plan -> apply ->
 * report. The only module that knows every stage.
 *
 * @module
 */
import type { Logger } from "npm:@logtape/logtape@^2.4.2";
import { applyPlan, type Roots } from "./apply.ts";
import { ContentState, findChangedFiles } from "./compare.ts";
import type { Disk } from "./disk.ts";
import { asError, reason } from "./error.ts";
import { type Action, plan } from "./plan.ts";
import {
  count,
  emptyTally,
  eventful,
  reportOutcome,
  reportProblem,
  reportSummary,
  type Tally,
} from "./report.ts";
import { scanTree } from "./scan.ts";
import type { Tree } from "./entry.ts";

/** Keeps one replica in step with one source, cycle after cycle. */
export class Mirror {
  readonly #roots: Roots;
  readonly #disk: Disk;
  readonly #log: Logger;
  readonly #content = new ContentState();
  readonly #warnedSpecial = new Set<string>();

  constructor(roots: Roots, disk: Disk, log: Logger) {
    this.#roots = roots;
    this.#disk = disk;
    this.#log = log;
  }

  /** Bytes of file content read for comparison since this mirror was made. */
  get hashedBytes(): number {
    return this.#content.hashedBytes;
  }

  /**
   * Run one cycle. Never throws for a file-system problem: each one is logged
   * and counted in the returned tally's `failed`.
   */
  async cycle(signal?: AbortSignal): Promise<Tally> {
    const started = performance.now();
    const tally = emptyTally();
    const ready = await this.#checkRoots(tally);
    if (ready) await this.#sync(tally, signal);
    if (eventful(tally)) reportSummary(this.#log, tally, performance.now() - started);
    return tally;
  }

  /** The source must be a readable folder; the replica is created when missing. */
  async #checkRoots(tally: Tally): Promise<boolean> {
    const { source, replica } = this.#roots;
    try {
      await this.#expectFolder(source);
    } catch (error) {
      return this.#rootFailed(tally, "Source", source, error);
    }
    try {
      await this.#expectFolder(replica);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        return this.#rootFailed(tally, "Replica", replica, error);
      }
      try {
        await this.#disk.mkdir(replica, true);
      } catch (error) {
        return this.#rootFailed(tally, "Replica", replica, error);
      }
      this.#log.info("Replica folder {path} has been created.", { action: "mkdir", path: replica });
    }
    return true;
  }

  async #expectFolder(path: string): Promise<void> {
    if (!(await this.#disk.lstat(path)).isDirectory) throw new Error("not a folder");
  }

  #rootFailed(tally: Tally, side: string, path: string, error: unknown): false {
    tally.failed++;
    this.#log.error(`${side} folder {path} is not usable ({reason}); nothing was done.`, {
      action: "read",
      path,
      reason: reason(asError(error)),
    });
    return false;
  }

  async #sync(tally: Tally, signal?: AbortSignal): Promise<void> {
    const { source: sourceRoot, replica: replicaRoot } = this.#roots;
    const source = scanTree(sourceRoot);
    const replica = scanTree(replicaRoot);
    for (const problem of source.problems) reportProblem(this.#log, "source", problem);
    for (const problem of replica.problems) reportProblem(this.#log, "replica", problem);
    tally.failed += source.problems.length + replica.problems.length;
    this.#warnAboutSpecialFiles(source.tree);

    const comparison = await findChangedFiles(
      sourceRoot,
      replicaRoot,
      source,
      replica,
      this.#content,
    );
    for (const problem of comparison.problems) reportProblem(this.#log, "source", problem);
    tally.failed += comparison.problems.length;

    const staleTemps: Action[] = replica.temps.map((path) => ({
      op: "remove",
      path,
      kind: "file",
    }));
    const actions = [
      ...staleTemps,
      ...plan(source.tree, replica.tree, {
        changed: comparison.changed,
        incomplete: source.incomplete,
      }),
    ];
    await applyPlan(actions, this.#roots, {
      disk: this.#disk,
      signal,
      onOutcome: (outcome) => {
        reportOutcome(this.#log, outcome);
        count(tally, outcome);
      },
    });
    this.#content.retain(source.tree, replica.tree);
  }

  /** FIFOs, sockets and devices are never opened or mirrored; say so once per path. */
  #warnAboutSpecialFiles(tree: Tree): void {
    for (const [path, entry] of tree) {
      if (entry.kind !== "other" || this.#warnedSpecial.has(path)) continue;
      this.#warnedSpecial.add(path);
      this.#log.warn("Special file {path} (FIFO, socket or device) is skipped.", {
        action: "skip",
        path,
      });
    }
  }
}

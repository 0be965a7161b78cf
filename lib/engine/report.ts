/**
 * Outcomes -> log lines, and the per-cycle summary.
 *
 * Messages keep the original tool's wording (`File X has been copied.`); the
 * path and the action also travel as structured properties of the record.
 *
 * @module
 */
import { NOUN } from "../core/entry.ts";
import { BackupError, type Outcome } from "./apply.ts";
import type { Action } from "./plan.ts";
import { reason } from "../core/error.ts";
import type { Problem } from "./scan.ts";

/**
 * Where a mirror's log lines go: a LogTape `Logger` is one. Messages are
 * templates whose `{name}` placeholders are filled from `properties`.
 */
export interface MirrorLog {
  /**
   * A line for `--verbose` (unchanged entries).
   *
   * @param message the line's template.
   * @param properties the values of its placeholders, and the record's other properties.
   */
  debug(message: string, properties?: Record<string, unknown>): void;
  /**
   * An action done (or planned, in a dry run), a summary.
   *
   * @param message the line's template.
   * @param properties the values of its placeholders, and the record's other properties.
   */
  info(message: string, properties?: Record<string, unknown>): void;
  /**
   * Something skipped that the next cycle retries or the user should know.
   *
   * @param message the line's template.
   * @param properties the values of its placeholders, and the record's other properties.
   */
  warn(message: string, properties?: Record<string, unknown>): void;
  /**
   * An action that failed.
   *
   * @param message the line's template.
   * @param properties the values of its placeholders, and the record's other properties.
   */
  error(message: string, properties?: Record<string, unknown>): void;
  /**
   * Whether lines of `level` are kept (the debug lines are not built otherwise).
   *
   * @param level the level asked about.
   * @returns true when lines of `level` go somewhere.
   */
  isEnabledFor(level: "debug"): boolean;
}

/** How log lines name each kind of entry. */

/** The replica root is "the replica folder" (named as the user gave it), any other one a folder. */
function folderNoun(action: Action): string {
  return action.path === "" ? "replica folder" : "folder";
}

function doneMessage(action: Action): string {
  switch (action.op) {
    case "root":
      return "Replica folder {path} has been created.";
    case "remove":
      return `${NOUN[action.kind]} {path} has been removed.`;
    case "move":
      return `${NOUN[action.kind]} {from} has been moved to {path}.`;
    case "mkdir":
      return "Folder {path} has been created.";
    case "copy":
      return `File {path} has been ${action.update ? "updated" : "copied"}.`;
    case "symlink":
      return `Symlink {path} has been ${action.update ? "updated" : "created"}.`;
    case "link":
      return "File {path} has been linked to {target}.";
    case "touch":
      return "Attributes of file {path} have been updated.";
    case "folder":
      return `Attributes of ${folderNoun(action)} {path} have been updated.`;
    case "lattr":
      return action.mtimeMs === undefined
        ? "Owner of symlink {path} has been updated."
        : "Attributes of symlink {path} have been updated.";
    case "keep":
      return "Folder {path} was kept: it holds excluded entries (its other contents were removed).";
  }
}

function plannedMessage(action: Action): string {
  switch (action.op) {
    case "root":
      return "Would create replica folder {path}.";
    case "remove":
      return `Would remove ${NOUN[action.kind].toLowerCase()} {path}.`;
    case "move":
      return `Would move ${NOUN[action.kind].toLowerCase()} {from} to {path}.`;
    case "mkdir":
      return "Would create folder {path}.";
    case "copy":
      return `Would ${action.update ? "update" : "copy"} file {path}.`;
    case "symlink":
      return `Would ${action.update ? "update" : "create"} symlink {path}.`;
    case "link":
      return "Would link file {path} to {target}.";
    case "touch":
      return "Would update the attributes of file {path}.";
    case "folder":
      return `Would update the attributes of ${folderNoun(action)} {path}.`;
    case "lattr":
      return action.mtimeMs === undefined
        ? "Would update the owner of symlink {path}."
        : "Would update the attributes of symlink {path}.";
    case "keep":
      return "Would keep folder {path}: it holds excluded entries.";
  }
}

/** What a backed-up action kept (the entry it deleted or overwrote), capitalised. */
function backedUpNoun(action: Action): string {
  if (action.op === "remove") return NOUN[action.kind];
  return action.op === "symlink" ? "Symlink" : "File";
}

function failedMessage(action: Action): string {
  switch (action.op) {
    case "root":
      return "Replica folder {path} is not usable ({reason}); nothing was done.";
    case "remove":
      return `Could not remove ${NOUN[action.kind].toLowerCase()} {path}: {reason}.`;
    case "move":
      return `Could not move ${NOUN[action.kind].toLowerCase()} {from} to {path}: {reason}.`;
    case "mkdir":
      return "Could not create folder {path}: {reason}.";
    case "copy":
      return `Could not ${action.update ? "update" : "copy"} file {path}: {reason}.`;
    case "link":
      return "Could not link file {path} to {target}: {reason}.";
    case "symlink":
      return "Could not create symlink {path}: {reason}.";
    case "touch":
      return "Could not set the attributes of file {path}: {reason}.";
    case "folder":
      return `Could not set the attributes of ${folderNoun(action)} {path}: {reason}.`;
    case "lattr":
      return "Could not set the attributes of symlink {path}: {reason}.";
    case "keep":
      return "Could not keep folder {path}: {reason}.";
  }
}

/** Log one outcome: INFO when done, WARNING when skipped, ERROR when failed.
 * `replica` names the replica folder (as the user gave it). */
export function reportOutcome(log: MirrorLog, outcome: Outcome, replica = "the replica"): void {
  const { action } = outcome;
  // The replica root is named as the user gave it; other paths are relative to the roots.
  const base = {
    action: action.op,
    path: action.path === "" ? replica : action.path,
    ...(action.op === "move" ? { from: action.from } : {}),
    ...(action.op === "link" ? { target: action.target } : {}),
  };
  switch (outcome.status) {
    case "done":
      if (outcome.quiet) break; // nothing worth a line changed
      if (outcome.prefix) {
        log.warn(
          "File {path} was copied as its first {bytes} bytes: it grew while being copied; " +
            "the next cycle copies the rest.",
          { ...base, bytes: outcome.bytes },
        );
        break;
      }
      if (outcome.backup !== undefined) {
        log.info(`${backedUpNoun(action)} {path} has been backed up to {backup}.`, {
          ...base,
          action: "backup",
          backup: outcome.backup,
        });
      }
      log.info(doneMessage(action), { ...base, bytes: outcome.bytes });
      break;
    case "skipped":
      if (action.op === "keep") {
        log.warn(
          `Folder {path} was kept: it holds excluded entries, so the source's ` +
            `${NOUN[action.blocks ?? "file"].toLowerCase()} {path} is not mirrored.`,
          base,
        );
      } else {
        const retry = outcome.final
          ? ""
          : outcome.retryInMs === undefined
          ? "; the next cycle retries"
          : `; it keeps changing: it is tried again after ${
            Math.round(outcome.retryInMs / 1000)
          } s`;
        log.warn(`File {path} was not copied: {reason}${retry}.`, {
          ...base,
          reason: outcome.reason,
        });
      }
      break;
    case "failed":
      if (outcome.error instanceof BackupError) {
        // Nothing lost: the entry stays as it is, and the next cycle tries again.
        log.warn(
          `${backedUpNoun(action)} {path} was left as it is: {reason}; the next cycle retries.`,
          { ...base, reason: outcome.error.message, failed: true },
        );
        break;
      }
      log.error(failedMessage(action), { ...base, reason: reason(outcome.error) });
      break;
    case "planned":
      if (action.op === "folder" && action.quiet) break; // only this cycle's own writes
      log.info(
        outcome.backup
          ? plannedMessage(action).replace(/^Would /, "Would back up and ")
          : plannedMessage(action),
        { ...base, dryRun: true, ...(outcome.backup ? { backup: true } : {}) },
      );
      break;
  }
}

/** Log a path that could not be read during a scan or a comparison. */
export function reportProblem(log: MirrorLog, side: "source" | "replica", problem: Problem): void {
  const where = problem.path === "" ? `the ${side} folder` : `${side} path {path}`;
  log.error(`Could not read ${where}: {reason}.`, {
    action: "read",
    path: problem.path,
    reason: reason(problem.error),
  });
}

/** Counts of one cycle. */
export interface Tally {
  /** Files copied that the replica did not have. */
  copied: number;
  /** Files copied over a different replica file. */
  updated: number;
  /** Entries whose attributes alone were set (mode, mtime, owner). */
  attributes: number;
  /** Replica entries removed. */
  removed: number;
  /** Replica files and folders moved (one rename each, no copy). */
  moved: number;
  /** Replica files made another name of a file (hard links; no copy). */
  linked: number;
  /** Folders made. */
  created: number;
  /** Symlinks made or replaced. */
  links: number;
  /** Things skipped (a file that changed or vanished while copied, a special file). */
  warnings: number;
  /** Files left behind because they changed or vanished while being copied (of `warnings`). */
  leftBehind: number;
  /** Actions that failed; the next cycle tries again. */
  failed: number;
  /** Bytes of file content written. */
  bytes: number;
  /** Actions a dry run would have taken. */
  planned: number;
  /** Entries kept in the backup folder before they were deleted or overwritten
   * (absent: no `--backup-dir`). */
  backedUp?: number;
  /** The source's tree digest after a cycle that changed something. */
  digest?: string;
  /** Why the summary says the digest was not computed (instead of {@link digest}). */
  digestMissing?: string;
  /**
   * Why the cycle did not mirror, or held its deletions back: a root that is
   * not usable (a missing or unmounted source), a deletion guard (see
   * `guards.ts`). Its ERROR line says more; it is also counted in `failed`.
   */
  refused?: string;
}

/**
 * A cycle's counts as the outside sees them (the JSON log's summary, the
 * status file, the metrics): the {@link Tally} with plain names.
 */
export interface Counts {
  /** Files copied that the replica did not have. */
  readonly copied: number;
  /** Files copied over a different replica file. */
  readonly updated: number;
  /** Replica files and folders moved (one rename each, no copy). */
  readonly moved: number;
  /** Replica entries removed. */
  readonly removed: number;
  /** Replica files made another name of a file (hard links). */
  readonly linked: number;
  /** Folders made. */
  readonly folders: number;
  /** Symlinks made or replaced. */
  readonly symlinks: number;
  /** Entries whose attributes alone were set. */
  readonly attributes: number;
  /** Things skipped (WARNING lines). */
  readonly warnings: number;
  /** Files left behind because they changed or vanished while being copied. */
  readonly leftBehind: number;
  /** Entries kept in the backup folder before they were deleted or overwritten (`--backup-dir`). */
  readonly backedUp: number;
  /** Actions that failed, and refusals (ERROR lines). */
  readonly failed: number;
  /** Bytes of file content written. */
  readonly bytes: number;
}

/**
 * The {@link Counts} of a tally.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { countsOf, emptyTally } from "./report.ts";
 * assert.equal(countsOf({ ...emptyTally(), links: 2 }).symlinks, 2);
 * ```
 */
export function countsOf(tally: Tally): Counts {
  return {
    copied: tally.copied,
    updated: tally.updated,
    moved: tally.moved,
    removed: tally.removed,
    linked: tally.linked,
    folders: tally.created,
    symlinks: tally.links,
    attributes: tally.attributes,
    warnings: tally.warnings,
    leftBehind: tally.leftBehind,
    failed: tally.failed,
    bytes: tally.bytes,
    backedUp: tally.backedUp ?? 0,
  };
}

/** An all-zero {@link Tally}. */
export function emptyTally(): Tally {
  return {
    copied: 0,
    updated: 0,
    attributes: 0,
    removed: 0,
    moved: 0,
    linked: 0,
    created: 0,
    links: 0,
    warnings: 0,
    leftBehind: 0,
    failed: 0,
    bytes: 0,
    planned: 0,
  };
}

/** Add one outcome to `tally`. */
export function count(tally: Tally, outcome: Outcome): void {
  if (outcome.status === "failed") {
    tally.failed++;
    return;
  }
  if (outcome.status === "skipped") {
    tally.warnings++;
    if (outcome.action.op === "copy") tally.leftBehind++;
    return;
  }
  const { action } = outcome;
  if (outcome.status === "planned") {
    if (!(action.op === "folder" && action.quiet)) tally.planned++;
    if (outcome.backup) tally.backedUp = (tally.backedUp ?? 0) + 1;
    return;
  }
  tally.bytes += outcome.bytes;
  if (outcome.backup !== undefined) tally.backedUp = (tally.backedUp ?? 0) + 1;
  if (outcome.prefix) {
    tally.warnings++;
    tally.leftBehind++;
  }
  if (action.op === "keep" || action.op === "root" || outcome.quiet) return;
  if (action.op === "remove") tally.removed++;
  else if (action.op === "move") tally.moved++;
  else if (action.op === "link") tally.linked++;
  else if (action.op === "mkdir") tally.created++;
  else if (action.op === "symlink") tally.links++;
  else if (action.op === "copy") action.update ? tally.updated++ : tally.copied++;
  else tally.attributes++;
}

/** Whether the cycle changed anything or ran into trouble. */
export function eventful(tally: Tally): boolean {
  return tally.copied + tally.updated + tally.linked + tally.attributes + tally.removed +
      tally.moved + tally.created + tally.links + tally.warnings + tally.failed + tally.planned > 0;
}

/**
 * Log the one-line summary of a cycle (of a dry run: what it would have
 * done); `stopped`: the cycle was stopped (SIGINT, SIGTERM) before its end.
 * The record's `counts` property holds the numbers as fields (see
 * {@link Counts}; a dry run's: `planned` and `failed`), with `seconds`.
 */
export function reportSummary(
  log: MirrorLog,
  tally: Tally,
  durationMs: number,
  dryRun = false,
  stopped = false,
): void {
  const seconds = (durationMs / 1000).toFixed(3);
  /** `{key} noun`, the noun in the plural unless the count is one. */
  const n = (
    key: "created" | "links" | "attributes" | "warnings" | "bytes" | "planned",
    noun: string,
  ) => `{${key}} ${noun}${tally[key] === 1 ? "" : "s"}`;
  if (dryRun) {
    log.info(
      `Dry run finished: ${n("planned", "action")} would be taken${
        tally.backedUp === undefined ? "" : " ({backedUp} after a backup)"
      }, {failed} failed; nothing was changed.`,
      {
        action: "summary",
        ...tally,
        seconds,
        counts: { planned: tally.planned, failed: tally.failed, seconds: Number(seconds) },
      },
    );
    return;
  }
  log.info(
    `Cycle ${stopped ? "stopped" : "finished"}: {copied} copied, {updated} updated, ` +
      `{linked} linked, {removed} removed, {moved} moved, ${n("created", "folder")} created, ` +
      `${n("links", "symlink")} made, ` +
      `${n("attributes", "attribute update")}, ${n("warnings", "warning")}, {failed} failed` +
      `${tally.backedUp === undefined ? "" : ", {backedUp} backed up"}; ` +
      `${n("bytes", "byte")} in {seconds} s${
        tally.digest !== undefined
          ? "; source tree digest {digest}"
          : tally.digestMissing !== undefined
          ? "; source tree digest not computed ({digestMissing})"
          : ""
      }.`,
    {
      action: "summary",
      ...tally,
      seconds,
      counts: {
        ...countsOf(tally),
        seconds: Number(seconds),
        ...(tally.digest === undefined ? {} : { digest: tally.digest }),
      },
    },
  );
}

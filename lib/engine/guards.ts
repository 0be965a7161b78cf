/**
 * The deletion guards, as a pure function beside the planner: whether a
 * cycle may delete anything in the replica, and why not.
 *
 * - An empty source beside a replica that is not empty deletes nothing,
 *   unless a trusted state recorded this very source root (its device and
 *   inode) in an earlier cycle, or the user accepts it for the run
 *   (`--accept-empty-source`). An unmounted disk shows its empty mount point;
 *   a lost, damaged or other working folder's state file records nothing: in
 *   neither case is the empty folder taken as the source's new content.
 * - A plan that would delete more entries than `--max-delete` deletes none.
 * - A partial (`--watch`) cycle leaves deletions to the next full cycle
 *   unless the source root is the one a full cycle recorded.
 *
 * @module
 */
import type { SourceRoot } from "../state/state.ts";

/** What the guards look at. */
export interface GuardInputs {
  /** The source root as a full cycle last saw it (the state's), if ever. */
  readonly recorded: SourceRoot | undefined;
  /** The source root's identity now. */
  readonly sourceId: string;
  /** Entries the source holds (of this cycle's walk). */
  readonly sourceEntries: number;
  /** Entries the replica holds (of this cycle's walk). */
  readonly replicaEntries: number;
  /** A full cycle (not a partial one of `--watch`). */
  readonly full: boolean;
  /** Replica entries the plan would delete (see `deletedEntries`). */
  readonly deletes: number;
  /**
   * `--max-delete`.
   *
   * @default no limit
   */
  readonly maxDelete?: number;
  /**
   * `--accept-empty-source`: an empty source may empty the replica in this
   * run even though no earlier cycle recorded this source root.
   *
   * @default {false}
   */
  readonly acceptEmptySource?: boolean;
}

/** Why a guard held deletions back (each deserves an ERROR). */
export type GuardRefusal =
  /** The source is empty and is not the folder a full cycle recorded (an unmounted disk?). */
  | { readonly kind: "unmounted" }
  /** The source is empty and no trusted record of it exists (a first run, a lost state). */
  | { readonly kind: "unrecorded" }
  /** More deletions than `--max-delete`. */
  | { readonly kind: "max-delete"; readonly count: number; readonly limit: number };

/** What the guards decided. */
export interface GuardVerdict {
  /** Whether the plan may delete. */
  readonly deletions: boolean;
  /** Why not, when a guard held that deserves an ERROR. */
  readonly refusal?: GuardRefusal;
  /** What the state should record as the source root (after a full cycle
   * whose source is not held back as empty). */
  readonly record?: SourceRoot;
}

/**
 * Decide whether a cycle may delete.
 *
 * @param inputs what the guards look at; see {@link GuardInputs}.
 * @returns whether the plan may delete, why not, and the source root to record.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { deletionGuard } from "./guards.ts";
 * const verdict = deletionGuard({
 *   recorded: { id: "1:2", heldEntries: true }, sourceId: "9:9", // another folder now
 *   sourceEntries: 0, replicaEntries: 10, full: true, deletes: 10,
 * });
 * assert.equal(verdict.deletions, false);
 * assert.equal(verdict.refusal?.kind, "unmounted");
 * ```
 */
export function deletionGuard(inputs: GuardInputs): GuardVerdict {
  const { recorded, sourceId, full } = inputs;
  const known = recorded !== undefined && recorded.id === sourceId;
  if (!full && !known) return { deletions: false };
  if (inputs.sourceEntries === 0 && inputs.replicaEntries > 0 && !known) {
    if (!inputs.acceptEmptySource) {
      // Not recorded either: the next cycle decides afresh.
      return { deletions: false, refusal: { kind: recorded ? "unmounted" : "unrecorded" } };
    }
  }
  const record = full ? { id: sourceId, heldEntries: inputs.sourceEntries > 0 } : undefined;
  const limit = inputs.maxDelete;
  if (limit !== undefined && inputs.deletes > limit) {
    return {
      deletions: false,
      refusal: { kind: "max-delete", count: inputs.deletes, limit },
      ...(record ? { record } : {}),
    };
  }
  return { deletions: true, ...(record ? { record } : {}) };
}

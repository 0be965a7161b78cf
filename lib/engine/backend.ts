/**
 * What a kind of replica (a backend: a local folder, a bucket, an SSH host)
 * tells the program, as rclone's `fs/registry.go` lets each backend register
 * its name, options and constructor: the command line, the refusals, the
 * claim and the run know no backend by name. A backend is one descriptor
 * (`backends/NAME/backend.ts`) and one line in `backends/registry.ts`; its
 * descriptor loads the rest of it only when it is chosen.
 *
 * @module
 */
import type { Rate } from "../core/rate.ts";
import type { Replica, TreeReader } from "../core/replica.ts";
import type { MirrorState } from "../state/state.ts";
import type { MirrorLog } from "./report.ts";

/** A flag only one backend takes (a text value; absent when not given). */
export interface BackendFlag {
  /** What `--help` says of it (its default in words, if any). */
  readonly brief: string;
  /** The value's name in `--help`. */
  readonly placeholder: string;
  /**
   * A path: an empty value is refused.
   *
   * @default {false}
   */
  readonly path?: boolean;
  /**
   * A switch (no value): given or not.
   *
   * @default {false}
   */
  readonly toggle?: boolean;
}

/** The paths of a run, as given, for a backend's refusals. */
export interface RunPaths {
  /** `--source`. */
  readonly source: string;
  /** `--log-file` (undefined: none, `--log-file -`). */
  readonly logFile: string | undefined;
  /** `--state-file`. */
  readonly stateFile: string;
  /** `--backup-dir`, if given. */
  readonly backupDir?: string;
  /** `--status-file`, where given. */
  readonly statusFile?: string | undefined;
  /** `--metrics-file`, where given. */
  readonly metricsFile?: string | undefined;
}

/**
 * The files of its own a run writes beside the trees, each with its flag
 * (those given): none may be inside the source or the replica.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ownFiles } from "./backend.ts";
 * assert.deepEqual(ownFiles({ logFile: "log", stateFile: "log.state", statusFile: "s.json" }), [
 *   ["--log-file", "log"], ["--state-file", "log.state"], ["--status-file", "s.json"],
 * ]);
 * ```
 */
export function ownFiles(paths: Omit<RunPaths, "source">): [string, string][] {
  const files: [string, string | undefined][] = [
    ["--log-file", paths.logFile],
    ["--state-file", paths.stateFile],
    ["--status-file", paths.statusFile],
    ["--metrics-file", paths.metricsFile],
  ];
  return files.filter((file): file is [string, string] => file[1] !== undefined);
}

/** How a run opens a replica. */
export interface OpenRun {
  /** A dry run: nothing is written, nothing locked. */
  readonly dryRun: boolean;
  /** `--verify`: the replica is only read. */
  readonly verify: boolean;
  /** `--time-interval` (a lock outlives a few of them). */
  readonly intervalSeconds: number;
  /** `--state-file` (who holds a replica can be told from it). */
  readonly stateFile: string;
  /**
   * `--backup-dir`: a folder on the replica's side (its file system, bucket
   * or host; one elsewhere is refused by {@link Backend.open}, naming the
   * flag). The session's replica gets {@link Replica.backups} then.
   */
  readonly backupDir?: string;
  /**
   * `--bwlimit`: every byte of file content written to the replica is taken
   * from it first (one rate for the whole run).
   *
   * @default no limit
   */
  readonly rate?: Rate;
}

/** A line for the log that taking a replica calls for (a warning, a creation). */
export interface Note {
  readonly level: "info" | "warn";
  readonly message: string;
  readonly properties: Readonly<Record<string, unknown>>;
}

/** What {@link ReplicaSession.verifyTree} gives `--verify`. */
export interface VerifyTree {
  /** The replica as read back (every file's content read afresh). */
  readonly tree: TreeReader;
  /** Why a source entry cannot be held there (left out of the comparison, as a cycle leaves it out). */
  readonly refuses?: (path: string, kind: "file" | "dir") => string | undefined;
  /** Whether the replica keeps hard links (compared then). */
  readonly links: boolean;
  /** Whether it keeps owners, where the program may know them (compared then). */
  readonly owners: boolean;
}

/** A replica reached for one run; see {@link Backend.open}. */
export interface ReplicaSession {
  /** Its identity in the state file (a real path; an endpoint, bucket and prefix; a host and path). */
  readonly id: string;
  /** Whether `--watch` can watch it (its events reach this machine). */
  readonly watchable: boolean;
  /**
   * `--backup-dir`'s path relative to the replica's root, when it lies inside
   * the replica (it must be excluded there then); else undefined.
   */
  readonly backupWithin?: string;
  /** `--verify`'s view of it. */
  verifyTree(): VerifyTree;
  /**
   * Before the log is opened, take what exists already (a local folder's
   * lock), so that a refusal touches nothing.
   *
   * @returns why the run must not start (a line naming the flag), or undefined.
   */
  hold?(): Promise<string | undefined>;
  /**
   * With the state open: make what is missing and take the replica for the
   * run (its lock); not in a dry run.
   *
   * @param state the run's state (its run id: an earlier run's lock is its own).
   * @param log where the run's lines go.
   * @returns what to log, or why the run must not start (a line naming the flag).
   */
  take(state: MirrorState, log: MirrorLog): Promise<readonly Note[] | string>;
  /**
   * The replica the cycles write.
   *
   * @param state the run's state (a backend may keep what it learns there).
   * @param log where the run's lines go.
   */
  replica(state: MirrorState, log: MirrorLog): Replica;
  /**
   * The replica's root was made again during the run: take it again.
   *
   * @returns why it could not be (another mirror took it), or undefined.
   */
  relock?(): Promise<string | undefined>;
  /** Let go of what the run held (locks, connections). */
  close(): Promise<void>;
}

/** One kind of replica; see the module documentation. */
export interface Backend {
  /** Its name (`local`, `s3`, `sftp`). */
  readonly name: string;
  /** How a replica of its kind is written, for messages (`s3://BUCKET/PREFIX`). */
  readonly form: string;
  /**
   * Whether the `--replica` value names a replica of this kind (the local
   * backend takes what no other does).
   *
   * @param replica `--replica` as given.
   */
  claims(replica: string): boolean;
  /** Its own flags, by their names in camel case (`s3Region` is `--s3-region`). */
  readonly flags: Readonly<Record<string, BackendFlag>>;
  /** Why `--watch` cannot be used with it; none: it can. */
  readonly noWatch?: string;
  /**
   * Why this configuration must not run, from the paths alone, before
   * anything is touched (a line naming the flag), or undefined.
   *
   * @param replica `--replica` as given.
   * @param paths the run's other paths.
   */
  refusal?(replica: string, paths: RunPaths): string | undefined;
  /**
   * Reach the replica: check the flags, find credentials, connect.
   *
   * @param replica `--replica` as given.
   * @param flags its own flags that were given (by name, see {@link flags}).
   * @param run how the run goes.
   * @returns the session.
   * @throws {Error} with a one-line message naming the flag at fault.
   */
  open(
    replica: string,
    flags: Readonly<Record<string, string | true>>,
    run: OpenRun,
  ): Promise<ReplicaSession>;
}

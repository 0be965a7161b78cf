/**
 * folder-mirror as a library: keep a replica an exact copy of a source, one
 * way, cycle after cycle, from any Deno program.
 *
 * ```ts
 * import { LocalReplica, LocalTree, Mirror } from "./mod.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.mkdirSync(`${dir}/photos`);
 * Deno.writeTextFileSync(`${dir}/photos/a.jpg`, "…");
 * const mirror = new Mirror(new LocalTree(`${dir}/photos`), new LocalReplica(`${dir}/backup`));
 * const result = await mirror.cycle(); // run it again whenever you like
 * console.log(`${result.copied} copied, ${result.failed} failed`);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 *
 * The two sides are interfaces: {@link TreeReader} (what is read, folder by
 * folder) and {@link Replica} (what is written); {@link LocalTree} and
 * {@link LocalReplica} are the folders on this machine. The planner
 * ({@link plan}) is a pure function of two trees, usable on its own.
 *
 * @module
 */
export { Mirror } from "./lib/engine/mirror.ts";
export type {
  CopyObserver,
  CycleResult,
  MirrorOptions,
  WriteObserver,
} from "./lib/engine/mirror.ts";
export { LocalReplica, LocalTree } from "./lib/backends/local/local.ts";
export type {
  LocalReplicaOptions,
  LocalTreeOptions,
  OwnNames,
} from "./lib/backends/local/local.ts";
export type {
  Attributes,
  AttributesResult,
  Backups,
  FileId,
  FileWrite,
  Kept,
  Listed,
  Listing,
  MaybePromise,
  Replica,
  RootInfo,
  TreeReader,
  WriteResult,
} from "./lib/core/replica.ts";
export { MirrorState, RememberedBase, StateFileError } from "./lib/state/state.ts";
export type { SourceRoot, StatePair } from "./lib/state/state.ts";
export { verifyTrees } from "./lib/engine/verify.ts";
export type { Verification, VerifyOptions } from "./lib/engine/verify.ts";
export { treeDigest } from "./lib/engine/digest.ts";
export { deletedEntries, ownerChange, plan } from "./lib/engine/plan.ts";
export type { Action, Owners, PlanOptions } from "./lib/engine/plan.ts";
export { deletionGuard } from "./lib/engine/guards.ts";
export type { GuardInputs, GuardRefusal, GuardVerdict } from "./lib/engine/guards.ts";
export type { Entry, Kind, Owner, StatKey, Tree } from "./lib/core/entry.ts";
export { PackedTree } from "./lib/core/tree.ts";
export { VERSION } from "./lib/core/version.ts";
export { excludeMatcher } from "./lib/core/exclude.ts";
export type { ExcludeMatcher } from "./lib/core/exclude.ts";
export { PairIndex } from "./lib/state/pair_index.ts";
export { TempNames } from "./lib/core/temp_names.ts";
export { Hasher } from "./lib/core/hash.ts";
export { realClock, TokenBucket } from "./lib/core/rate.ts";
export type { Clock, Rate, TokenBucketOptions } from "./lib/core/rate.ts";
export { closeLogging, setupLogging } from "./lib/cli/log.ts";
export type { ConsoleLine, ConsoleTap, LogFile, LogOptions, ProblemRecord } from "./lib/cli/log.ts";
export type { Disk } from "./lib/backends/local/disk.ts";
export type { Copier } from "./lib/backends/local/copy_worker.ts";
export type { MirrorLog, Tally } from "./lib/engine/report.ts";
export type { CopyJob, CopyResult } from "./lib/backends/local/copy.ts";
export type { Side } from "./lib/state/pair_index.ts";
export { S3Replica } from "./lib/backends/s3/replica.ts";
export type { S3ReplicaOptions } from "./lib/backends/s3/replica.ts";
export { S3Error, S3Store, S3Unreachable } from "./lib/backends/s3/store.ts";
export type {
  S3Credentials,
  S3Folder,
  S3Head,
  S3Object,
  S3Options,
} from "./lib/backends/s3/store.ts";
export { ObjectMemory } from "./lib/backends/s3/memory.ts";
export type { Known } from "./lib/backends/s3/memory.ts";
export type { Remembered } from "./lib/state/state.ts";

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
export { Mirror } from "./lib/mirror.ts";
export type { CycleResult, MirrorOptions, WriteObserver } from "./lib/mirror.ts";
export { LocalReplica, LocalTree } from "./lib/local.ts";
export type { LocalReplicaOptions, LocalTreeOptions, OwnNames } from "./lib/local.ts";
export type {
  Attributes,
  AttributesResult,
  FileWrite,
  Listed,
  Listing,
  MaybePromise,
  Replica,
  RootInfo,
  TreeReader,
  WriteResult,
} from "./lib/replica.ts";
export { MirrorState, StateFileError } from "./lib/state.ts";
export type { SourceRoot, StatePair } from "./lib/state.ts";
export { verifyTrees } from "./lib/verify.ts";
export type { Verification, VerifyOptions } from "./lib/verify.ts";
export { treeDigest } from "./lib/digest.ts";
export { deletedEntries, ownerChange, plan } from "./lib/plan.ts";
export type { Action, Owners, PlanOptions } from "./lib/plan.ts";
export { deletionGuard } from "./lib/guards.ts";
export type { GuardInputs, GuardRefusal, GuardVerdict } from "./lib/guards.ts";
export type { Entry, Kind, Owner, StatKey, Tree } from "./lib/entry.ts";
export { PackedTree } from "./lib/tree.ts";
export { VERSION } from "./lib/version.ts";
export { excludeMatcher } from "./lib/exclude.ts";
export type { ExcludeMatcher } from "./lib/exclude.ts";
export { PairIndex } from "./lib/pair_index.ts";
export { TempNames } from "./lib/temp_names.ts";
export { Hasher } from "./lib/hash.ts";
export { closeLogging, setupLogging } from "./lib/log.ts";
export type { ConsoleLine, ConsoleTap, LogFile, LogOptions } from "./lib/log.ts";
export type { Disk } from "./lib/disk.ts";
export type { Copier } from "./lib/copy_worker.ts";
export type { MirrorLog, Tally } from "./lib/report.ts";
export type { CopyJob, CopyResult } from "./lib/copy.ts";
export type { Side } from "./lib/pair_index.ts";
export { S3Replica } from "./lib/s3_replica.ts";
export type { S3ReplicaOptions } from "./lib/s3_replica.ts";
export { S3Error, S3Store, S3Unreachable } from "./lib/s3.ts";
export type { S3Credentials, S3Folder, S3Head, S3Object, S3Options } from "./lib/s3.ts";
export { ObjectMemory } from "./lib/s3_memory.ts";
export type { Known } from "./lib/s3_memory.ts";
export type { Remembered } from "./lib/state.ts";

/**
 * One writer per replica in a bucket: a lease lock (`core/lease_lock.ts`)
 * kept as a lock object, written only where none is (`If-None-Match: *`).
 *
 * The lock objects of all mirrors of a bucket are in one folder at its root,
 * {@link LOCKS}, one per replica, named by the replica's prefix
 * ({@link lockKey}); a replica that is the whole bucket leaves that folder
 * out of its listings.
 *
 * @module
 */
import { LeaseLock, type LeaseStore } from "../../core/lease_lock.ts";
import { S3Error, type S3Store } from "./store.ts";

/** The folder, at the bucket's root, of the lock objects of its replicas. */
export const LOCKS = ".folder-mirror-locks";

/**
 * The key of the lock object of the replica at `prefix` (`""`: the whole bucket).
 *
 * @param prefix the replica's key prefix, without slashes at its ends.
 * @returns the lock object's key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lockKey } from "./lock.ts";
 * assert.equal(lockKey("home/alice"), ".folder-mirror-locks/%2Fhome%2Falice");
 * assert.equal(lockKey(""), ".folder-mirror-locks/%2F");
 * ```
 */
export function lockKey(prefix: string): string {
  return keyOf(`/${prefix}`);
}

function keyOf(tree: string): string {
  return `${LOCKS}/${encodeURIComponent(tree)}`;
}

/** The tree (`/prefix`) a lock object's key belongs to, or undefined when it is not one. */
function treeOf(key: string): string | undefined {
  if (!key.startsWith(`${LOCKS}/`)) return undefined;
  try {
    const path = decodeURIComponent(key.slice(LOCKS.length + 1));
    return path.startsWith("/") ? path : undefined;
  } catch {
    return undefined;
  }
}

/** The lock objects of a bucket, as a {@link LeaseStore}. */
function bucketLeases(store: S3Store): LeaseStore {
  return {
    async create(tree, body) {
      try {
        await store.put(keyOf(tree), body, {}, { ifNoneMatch: true });
        return true;
      } catch (error) {
        if (error instanceof S3Error && error.status === 412) return false;
        throw error;
      }
    },
    async write(tree, body) {
      await store.put(keyOf(tree), body);
    },
    async read(tree) {
      return (await store.read(keyOf(tree)))?.body;
    },
    async remove(tree) {
      const failed = await store.deleteMany([keyOf(tree)]);
      if (failed.length > 0) throw failed[0]!.error;
    },
    async trees() {
      const keys = await store.pathsUnder(LOCKS);
      return keys.map(treeOf).filter((tree) => tree !== undefined);
    },
    describe: (tree) => tree === "/" ? "the whole bucket" : `'${tree.slice(1)}'`,
  };
}

/**
 * The lock of one replica in a bucket; see the module documentation.
 *
 * @example
 * ```ts ignore
 * const lock = new BucketLock(store, lockKey("home"), "run-1", 120_000);
 * const refused = await lock.acquire(() => false);
 * if (refused === undefined) { ...; await lock.release(); }
 * ```
 */
export class BucketLock extends LeaseLock {
  /**
   * @param store the bucket, with no prefix (the lock is beside the tree).
   * @param key the lock object's key ({@link lockKey}).
   * @param runId this run's id.
   * @param ttlMs how long the lock lasts unless renewed.
   */
  constructor(store: S3Store, key: string, runId: string, ttlMs: number) {
    const tree = treeOf(key);
    if (tree === undefined) throw new Error(`'${key}' is not the key of a lock object`);
    super(bucketLeases(store), tree, runId, ttlMs);
  }
}

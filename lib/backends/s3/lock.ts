/**
 * One writer per replica in a bucket: a lock object, written only where none
 * is (`If-None-Match: *`), that names its holder and when it expires. The
 * holder renews it while it runs and deletes it when it ends; one left by a
 * killed run expires, and a run with the same state file takes it over at
 * once (it holds the state file's lock, so the run that left it is gone).
 *
 * The lock objects of all mirrors of a bucket are in one folder at its root,
 * {@link LOCKS}, one per replica, named by the replica's prefix
 * ({@link lockKey}); a replica that is the whole bucket leaves that folder
 * out of its listings. So a mirror finds, with one listing, every other
 * mirror of the bucket, and refuses to write a replica inside or around the
 * replica of one that runs (whichever started second refuses); and no mirror
 * ever deletes another's lock.
 *
 * @module
 */
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
  return `${LOCKS}/${encodeURIComponent(`/${prefix}`)}`;
}

/** The prefix a lock object's key belongs to, or undefined when it is not one. */
function prefixOf(key: string): string | undefined {
  if (!key.startsWith(`${LOCKS}/`)) return undefined;
  try {
    const path = decodeURIComponent(key.slice(LOCKS.length + 1));
    return path.startsWith("/") ? path.slice(1) : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the trees at prefixes `a` and `b` (not the same) overlap: one holds the other. */
function nested(a: string, b: string): boolean {
  return a === "" || b === "" || b.startsWith(`${a}/`) || a.startsWith(`${b}/`);
}

/** What the lock object says. */
interface Holder {
  /** The holder's run id. */
  readonly runId: string;
  /** Its process id. */
  readonly pid: number;
  /** When it took the lock (epoch ms; 0: unknown, long ago). */
  readonly started: number;
  /** When the lock lapses unless renewed (epoch ms). */
  readonly expires: number;
}

/**
 * The lock of one replica in a bucket; see the module documentation.
 *
 * @example
 * ```ts ignore
 * const lock = new BucketLock(store, "home.folder-mirror-lock", "run-1", 120_000);
 * const refused = await lock.acquire(() => false);
 * if (refused === undefined) { ...; await lock.release(); }
 * ```
 */
export class BucketLock {
  readonly #store: S3Store;
  readonly #path: string;
  readonly #runId: string;
  readonly #ttlMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** When it was last written (epoch ms). */
  #writtenAt = 0;
  /** Whose lock {@link acquire} took over (deleted), in a few words, if it did. */
  takenOver: string | undefined;
  /** When this run took the lock. */
  #started = Date.now();

  /**
   * @param store the bucket, with no prefix (the lock is beside the tree).
   * @param path the lock object's key.
   * @param runId this run's id.
   * @param ttlMs how long the lock lasts unless renewed.
   */
  constructor(store: S3Store, path: string, runId: string, ttlMs: number) {
    this.#store = store;
    this.#path = path;
    this.#runId = runId;
    this.#ttlMs = ttlMs;
  }

  /**
   * Take the lock, unless another running mirror holds it, or holds the lock
   * of a replica inside or around this one (and started first).
   *
   * @param isEarlierRun whether a run id is one of an earlier run of this
   *   state file (a lock it left is taken over).
   * @returns undefined when taken; else who holds it (or what it holds), in a few words.
   */
  async acquire(isEarlierRun: (runId: string) => boolean): Promise<string | undefined> {
    const held = await this.#acquire(isEarlierRun);
    if (held !== undefined) return held;
    const other = await this.#nestedHolder(isEarlierRun);
    if (other === undefined) return undefined;
    await this.#remove().catch(() => {});
    return other;
  }

  /**
   * A running mirror of a replica inside or around this one that started
   * first, in a few words (the other one of two that start at once refuses).
   */
  async #nestedHolder(isEarlierRun: (runId: string) => boolean): Promise<string | undefined> {
    const mine = prefixOf(this.#path);
    if (mine === undefined) return undefined;
    for (const key of await this.#store.pathsUnder(LOCKS)) {
      const theirs = prefixOf(key);
      if (theirs === undefined || key === this.#path || !nested(mine, theirs)) continue;
      const holder = await this.#holder(key);
      if (holder === undefined || holder.expires <= Date.now() || isEarlierRun(holder.runId)) {
        continue;
      }
      const first = holder.started < this.#started ||
        (holder.started === this.#started && holder.runId < this.#runId);
      if (!first) continue;
      const where = theirs === "" ? "the whole bucket" : `'${theirs}'`;
      return `${
        mine === "" || (theirs !== "" && theirs.startsWith(`${mine}/`)) ? "contains" : "is inside"
      } ${where}, the replica of another running mirror (pid ${holder.pid})`;
    }
    return undefined;
  }

  async #acquire(isEarlierRun: (runId: string) => boolean): Promise<string | undefined> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await this.#store.put(this.#path, this.#body(), {}, { ifNoneMatch: true });
        this.#writtenAt = Date.now();
        return undefined;
      } catch (error) {
        if (!(error instanceof S3Error) || error.status !== 412) throw error;
      }
      const holder = await this.#holder();
      if (holder === undefined) continue; // released meanwhile
      if (holder.expires > Date.now() && !isEarlierRun(holder.runId)) {
        return `pid ${holder.pid}; its lock lapses at ${
          new Date(holder.expires).toISOString()
        } unless renewed`;
      }
      // Expired, or left by an earlier run of this very mirror: taken over.
      this.takenOver = `pid ${holder.pid}, ${
        isEarlierRun(holder.runId)
          ? "an earlier run of this state file"
          : `lapsed at ${new Date(holder.expires).toISOString()}`
      }`;
      await this.#remove();
    }
    return "it was taken by another mirror at the same moment";
  }

  /**
   * Renew the lock now and every third of its lifetime until {@link release}.
   *
   * @param onLost told when renewing finds the lock held by someone else.
   */
  keep(onLost: (why: Error) => void): void {
    const timer = setInterval(() => this.renew().catch(onLost), this.#ttlMs / 3);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /**
   * Renew the lock (a new expiry).
   *
   * @throws {Error} when it is no longer this run's (it lapsed and another took it).
   */
  async renew(): Promise<void> {
    const holder = await this.#holder();
    if (holder !== undefined && holder.runId !== this.#runId) {
      throw new Error(`another mirror (pid ${holder.pid}) holds the replica's lock now`);
    }
    await this.#store.put(this.#path, this.#body());
    this.#writtenAt = Date.now();
  }

  /**
   * {@link renew}, when a third of the lock's lifetime has passed since it
   * was last written (a cycle soon after another asks nothing of the store).
   */
  async renewIfDue(): Promise<void> {
    if (Date.now() - this.#writtenAt >= this.#ttlMs / 3) await this.renew();
  }

  /** Stop renewing; delete the lock if it is still this run's. */
  async release(): Promise<void> {
    clearInterval(this.#timer);
    const holder = await this.#holder().catch(() => undefined);
    if (holder?.runId === this.#runId) await this.#remove().catch(() => {});
  }

  #body(): Uint8Array<ArrayBuffer> {
    const holder: Holder = {
      runId: this.#runId,
      pid: Deno.pid,
      started: this.#started,
      expires: Date.now() + this.#ttlMs,
    };
    return new TextEncoder().encode(JSON.stringify(holder));
  }

  async #holder(path = this.#path): Promise<Holder | undefined> {
    const read = await this.#store.read(path);
    if (read === undefined) return undefined;
    try {
      const holder = JSON.parse(new TextDecoder().decode(read.body));
      return {
        runId: String(holder.runId),
        pid: Number(holder.pid),
        started: Number(holder.started ?? 0) || 0,
        expires: Number(holder.expires),
      };
    } catch {
      return { runId: "", pid: 0, started: 0, expires: 0 }; // not a lock of ours: expired
    }
  }

  async #remove(): Promise<void> {
    const failed = await this.#store.deleteMany([this.#path]);
    if (failed.length > 0) throw failed[0]!.error;
  }
}

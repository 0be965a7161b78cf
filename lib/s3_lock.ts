/**
 * One writer per replica in a bucket: a lock object, written only where none
 * is (`If-None-Match: *`), that names its holder and when it expires. The
 * holder renews it while it runs and deletes it when it ends; one left by a
 * killed run expires, and a run with the same state file takes it over at
 * once (it holds the state file's lock, so the run that left it is gone).
 *
 * The lock object is beside the tree, never in it: `PREFIX.folder-mirror-lock`
 * for a tree under a prefix; for a tree that is the whole bucket there is no
 * beside, so it is `.folder-mirror-lock` at the root, which the replica's
 * listings leave out.
 *
 * @module
 */
import { S3Error, type S3Store } from "./s3.ts";

/** The name of the lock object of a tree that is the whole bucket. */
export const ROOT_LOCK = ".folder-mirror-lock";

/** What the lock object says. */
interface Holder {
  /** The holder's run id. */
  readonly runId: string;
  /** Its process id. */
  readonly pid: number;
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
   * Take the lock, unless another running mirror holds it.
   *
   * @param isEarlierRun whether a run id is one of an earlier run of this
   *   state file (a lock it left is taken over).
   * @returns undefined when taken; else who holds it, in a few words.
   */
  async acquire(isEarlierRun: (runId: string) => boolean): Promise<string | undefined> {
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
      expires: Date.now() + this.#ttlMs,
    };
    return new TextEncoder().encode(JSON.stringify(holder));
  }

  async #holder(): Promise<Holder | undefined> {
    const read = await this.#store.read(this.#path);
    if (read === undefined) return undefined;
    try {
      const holder = JSON.parse(new TextDecoder().decode(read.body));
      return {
        runId: String(holder.runId),
        pid: Number(holder.pid),
        expires: Number(holder.expires),
      };
    } catch {
      return { runId: "", pid: 0, expires: 0 }; // not a lock of ours: expired
    }
  }

  async #remove(): Promise<void> {
    const failed = await this.#store.deleteMany([this.#path]);
    if (failed.length > 0) throw failed[0]!.error;
  }
}

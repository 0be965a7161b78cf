/**
 * One writer per remote replica: a lease lock, as a lock object in a bucket
 * or a lock file on an SSH host. A lock is written only where none is (an
 * exclusive create), names its holder and when it expires; the holder renews
 * it while it runs and deletes it when it ends; one left by a killed run
 * expires, and a run with the same state file takes it over at once (it holds
 * the state file's lock, so the run that left it is gone).
 *
 * The locks of all mirrors of one store (a bucket, a host) are kept together
 * ({@link LeaseStore}), one per replica, named by the replica's tree (a path
 * from `/`). So a mirror finds, with one listing, every other mirror of the
 * store, and refuses to write a replica inside or around the replica of one
 * that runs (whichever started second refuses); and no mirror ever deletes
 * another's lock.
 *
 * @module
 */

/** Where the locks of one store are kept; what a backend gives {@link LeaseLock}. */
export interface LeaseStore {
  /**
   * Write the lock of `tree` only if there is none.
   *
   * @returns false when one is there already.
   */
  create(tree: string, body: Uint8Array<ArrayBuffer>): Promise<boolean>;
  /** Write the lock of `tree`, replacing what is there. */
  write(tree: string, body: Uint8Array<ArrayBuffer>): Promise<void>;
  /** The lock of `tree`, or undefined when there is none. */
  read(tree: string): Promise<Uint8Array | undefined>;
  /** Delete the lock of `tree` (gone already is fine). */
  remove(tree: string): Promise<void>;
  /** The trees of every lock there is. */
  trees(): Promise<string[]>;
  /** How messages name the tree (`'home/alice'`, `the whole bucket`). */
  describe(tree: string): string;
}

/** Whether the trees `a` and `b` (paths from `/`, not the same) overlap: one holds the other. */
function nested(a: string, b: string): boolean {
  return a === "/" || b === "/" || b.startsWith(`${a}/`) || a.startsWith(`${b}/`);
}

/** What a lock says. */
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
 * The lock of one remote replica; see the module documentation.
 *
 * @example
 * ```ts ignore
 * const lock = new LeaseLock(store, "/home/alice", "run-1", 120_000);
 * const refused = await lock.acquire(() => false);
 * if (refused === undefined) { ...; await lock.release(); }
 * ```
 */
export class LeaseLock {
  readonly #store: LeaseStore;
  readonly #tree: string;
  readonly #runId: string;
  readonly #ttlMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** When it was last written (epoch ms). */
  #writtenAt = 0;
  /** Whose lock {@link acquire} took over (deleted), in a few words, if it did. */
  takenOver: string | undefined;
  /** When this run took the lock. */
  #started = Date.now();
  /** The renewal under way. */
  #renewing: Promise<void> | undefined;

  /**
   * @param store where the locks are.
   * @param tree the replica's tree, a path from `/`.
   * @param runId this run's id.
   * @param ttlMs how long the lock lasts unless renewed.
   */
  constructor(store: LeaseStore, tree: string, runId: string, ttlMs: number) {
    this.#store = store;
    this.#tree = tree;
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
    await this.#store.remove(this.#tree).catch(() => {});
    return other;
  }

  /**
   * A running mirror of a replica inside or around this one that started
   * first, in a few words (the other one of two that start at once refuses).
   */
  async #nestedHolder(isEarlierRun: (runId: string) => boolean): Promise<string | undefined> {
    const mine = this.#tree;
    for (const theirs of await this.#store.trees()) {
      if (theirs === mine || !nested(mine, theirs)) continue;
      const holder = await this.#holder(theirs);
      if (holder === undefined || holder.expires <= Date.now() || isEarlierRun(holder.runId)) {
        continue;
      }
      const first = holder.started < this.#started ||
        (holder.started === this.#started && holder.runId < this.#runId);
      if (!first) continue;
      return `${theirs.startsWith(`${mine}/`) || mine === "/" ? "contains" : "is inside"} ${
        this.#store.describe(theirs)
      }, the replica of another running mirror (pid ${holder.pid})`;
    }
    return undefined;
  }

  async #acquire(isEarlierRun: (runId: string) => boolean): Promise<string | undefined> {
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await this.#store.create(this.#tree, this.#body())) {
        this.#writtenAt = Date.now();
        return undefined;
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
      await this.#store.remove(this.#tree);
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
  renew(): Promise<void> {
    // One renewal at a time (the timer's and a cycle's may meet).
    return this.#renewing ??= this.#renew().finally(() => this.#renewing = undefined);
  }

  async #renew(): Promise<void> {
    const holder = await this.#holder();
    if (holder !== undefined && holder.runId !== this.#runId) {
      throw new Error(`another mirror (pid ${holder.pid}) holds the replica's lock now`);
    }
    await this.#store.write(this.#tree, this.#body());
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
    if (holder?.runId === this.#runId) await this.#store.remove(this.#tree).catch(() => {});
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

  async #holder(tree = this.#tree): Promise<Holder | undefined> {
    const body = await this.#store.read(tree);
    if (body === undefined) return undefined;
    try {
      const holder = JSON.parse(new TextDecoder().decode(body));
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
}

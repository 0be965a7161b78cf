/**
 * {@link UploadPool}: the upload workers of a run (`upload_worker.ts`), each
 * with an SSH connection of its own, started when a big file is written and
 * stopped after 5 s without one (each holds ~90 MiB). One file at a time
 * each; a file waits for a free worker. Under `--bwlimit` a worker asks the
 * run's rate, here, for the bytes of each request it sends.
 *
 * @module
 */
import type { Rate } from "../../core/rate.ts";
import type { FileWrite, WriteResult } from "../../core/replica.ts";
import type { SshOptions } from "./connect.ts";

/** Workers idle this long (ms) are stopped. */
const IDLE_MS = 5000;

/** What the replica asks of the pool. */
export interface Uploader {
  /** Whether a worker is free now (else the file is better written on the replica's connection). */
  available(): boolean;
  /**
   * Write one file through a worker.
   *
   * @param write the file.
   * @param abs its path on the host.
   * @param temp the temp path beside it.
   * @param signal a stop: the file is not started (one under way ends on its own).
   * @returns how the write ended.
   */
  upload(write: FileWrite, abs: string, temp: string, signal?: AbortSignal): Promise<WriteResult>;
}

/** The workers; see the module documentation. */
export class UploadPool implements Uploader {
  readonly #options: SshOptions;
  /** Workers at most (0 once one failed: big files then go over the replica's connection). */
  #size: number;
  readonly #idle: Worker[] = [];
  readonly #all: Worker[] = [];
  readonly #waiting: ((worker: Worker) => void)[] = [];
  readonly #answers = new Map<number, (result: WriteResult) => void>();
  #next = 0;
  #busy = 0;
  /** The file each worker is writing (its message id). */
  readonly #current = new Map<Worker, number>();
  /** The stop of the file each worker is writing. */
  readonly #stops = new Map<Worker, AbortSignal | undefined>();
  readonly #rate: Rate | undefined;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param options how each worker connects.
   * @param size how many workers.
   * @param rate `--bwlimit`: the workers take their bytes from it.
   */
  constructor(options: SshOptions, size: number, rate?: Rate) {
    this.#options = options;
    this.#size = size;
    this.#rate = rate;
  }

  available(): boolean {
    return this.#idle.length > 0 || this.#all.length < this.#size;
  }

  #worker(): Promise<Worker> {
    const idle = this.#idle.pop();
    if (idle !== undefined) return Promise.resolve(idle);
    if (this.#all.length < this.#size) {
      const worker = new Worker(new URL("./upload_worker.ts", import.meta.url).href, {
        type: "module",
      });
      worker.onmessage = (event: MessageEvent) => {
        if ("take" in event.data) {
          // Granted in order (a worker waits for each before it asks again); a
          // stopped upload's worker is gone: its wait ends with it.
          const bytes = (event.data as { take: number }).take;
          this.#rate?.take(bytes, this.#stops.get(worker))
            .then(() => worker.postMessage({ granted: true }), () => {});
          return;
        }
        const { id, result } = event.data as { id: number; result: WriteResult };
        this.#answers.get(id)?.(result);
        this.#answers.delete(id);
      };
      // A worker that could not start or crashed: its file fails (retried alone, on the
      // replica's connection, as every big file from now on).
      worker.onerror = (event: ErrorEvent) => {
        event.preventDefault();
        const id = this.#current.get(worker);
        const answer = id === undefined ? undefined : this.#answers.get(id);
        if (id !== undefined) this.#answers.delete(id);
        this.#drop(worker);
        this.#size = 0;
        answer?.({ status: "failed", name: "Error", message: `upload worker: ${event.message}` });
      };
      worker.postMessage({
        options: this.#options,
        ...(this.#rate ? { chunk: this.#rate.chunk } : {}),
      });
      this.#all.push(worker);
      return Promise.resolve(worker);
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  #release(worker: Worker): void {
    this.#busy--;
    const next = this.#waiting.shift();
    if (next !== undefined) return next(worker);
    this.#idle.push(worker);
    if (this.#busy > 0) return;
    // Idle a while: the workers go (their memory with them); the next big file starts one again.
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      if (this.#busy === 0) this.close();
    }, IDLE_MS);
    Deno.unrefTimer(this.#idleTimer);
  }

  async upload(
    write: FileWrite,
    abs: string,
    temp: string,
    signal?: AbortSignal,
  ): Promise<WriteResult> {
    this.#busy++;
    clearTimeout(this.#idleTimer);
    const worker = await this.#worker();
    try {
      if (signal?.aborted) return { status: "skipped", reason: "the run was stopped" };
      const id = this.#next++;
      return await new Promise<WriteResult>((resolve) => {
        this.#answers.set(id, resolve);
        this.#current.set(worker, id);
        this.#stops.set(worker, signal);
        worker.postMessage({ id, write, abs, temp });
        // A stop does not wait for the upload: the worker goes, its temp file is swept later.
        signal?.addEventListener("abort", () => {
          if (!this.#answers.delete(id)) return;
          this.#drop(worker);
          resolve({ status: "skipped", reason: "the run was stopped" });
        }, { once: true });
      });
    } finally {
      if (this.#all.includes(worker)) this.#release(worker);
      else this.#busy--;
    }
  }

  /** Stop one worker (stopped in the middle of an upload). */
  #drop(worker: Worker): void {
    worker.terminate();
    this.#current.delete(worker);
    this.#stops.delete(worker);
    for (const list of [this.#all, this.#idle]) {
      const at = list.indexOf(worker);
      if (at >= 0) list.splice(at, 1);
    }
  }

  /** Stop every worker (their connections end with them). */
  close(): void {
    clearTimeout(this.#idleTimer);
    for (const worker of this.#all) worker.terminate();
    this.#all.length = 0;
    this.#idle.length = 0;
    for (const [, answer] of this.#answers) {
      answer({ status: "skipped", reason: "the run was stopped" });
    }
    this.#answers.clear();
  }
}

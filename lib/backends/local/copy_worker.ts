/**
 * The copy worker: a second thread that copies batches of small files while
 * the main thread copies the rest (see `apply.ts`).
 *
 * Its code is made from the very functions the main thread copies with
 * (`copy.ts`), by their source text, and started from a `blob:` URL: no module
 * file is loaded for it, so it needs no read access to the program's own files
 * (`--allow-read` scoped to the two folders is enough) and no network access
 * when the program runs from a URL.
 *
 * @module
 */
import {
  chownAsAllowed,
  copyFile,
  type CopyJob,
  type CopyResult,
  exists,
  removeQuietly,
} from "./copy.ts";
import { entryFromInfo, keyOf, statKey } from "../../core/entry.ts";
import { asError } from "../../core/error.ts";
import { checkSource, notCopied } from "../../core/source.ts";

/** The disk of the worker: the sync calls a small copy needs. */
function workerDisk() {
  return {
    copyFile: (from: string, to: string) => Deno.copyFileSync(from, to), // small, dense files only
    utime: (path: string, atime: Date, mtime: Date) => Deno.utimeSync(path, atime, mtime),
    chmod: (path: string, mode: number) => Deno.chmodSync(path, mode),
    truncate: (path: string, length: number) => Deno.truncateSync(path, length),
    chown: (path: string, uid: number | null, gid: number | null) => Deno.chownSync(path, uid, gid),
    rename: (from: string, to: string) => Deno.renameSync(from, to),
    remove: (path: string, recursive: boolean) => Deno.removeSync(path, { recursive }),
    lstat: (path: string) => Deno.lstatSync(path),
  };
}

/** The worker's whole code: every function a copy calls, then the message handler. */
export function workerSource(): string {
  const functions = [
    copyFile,
    chownAsAllowed,
    exists,
    removeQuietly,
    entryFromInfo,
    keyOf,
    statKey,
    checkSource,
    notCopied,
    workerDisk,
  ];
  return [
    ...functions.map(String),
    "const disk = workerDisk();",
    "self.onmessage = (event) => self.postMessage(event.data.map((job) => copyFile(disk, job)));",
  ].join("\n");
}

/** What {@link CopyWorker} does; tests may give the applier another one. */
export interface Copier {
  /**
   * Copy `jobs` (small files); rejects if the worker cannot do it.
   *
   * @param jobs the copies to make.
   * @returns how each copy ended, in the order of `jobs`.
   */
  copy(jobs: readonly CopyJob[]): Promise<CopyResult[]>;
  /** Stop the worker; copies not answered yet reject, and so do later ones. */
  close(): void;
}

/**
 * The copy worker, started at once. A worker that failed once (its code
 * threw) is terminated and rejects every later batch at once: it would never
 * answer again.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CopyWorker } from "./copy_worker.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/a`, "a");
 * const worker = new CopyWorker();
 * const [result] = await worker.copy([
 *   { from: `${dir}/a`, dest: `${dir}/b`, size: 1, mtimeMs: 0, mode: 0o644, expectedKey: "" },
 * ]);
 * worker.close();
 * assert.equal(result?.status, "skipped"); // the expected key did not match: discarded
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class CopyWorker implements Copier {
  #worker: Worker | undefined;
  #failure: Error | undefined;
  /** Batches sent and not answered yet, oldest first (the worker answers in order). */
  readonly #waiting: {
    resolve: (results: CopyResult[]) => void;
    reject: (error: Error) => void;
  }[] = [];

  /** @param source the worker's code. Default: {@link workerSource}. */
  constructor(source: string = workerSource()) {
    try {
      const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
      this.#worker = new Worker(url, { type: "module" });
      URL.revokeObjectURL(url);
    } catch (error) {
      this.#failure = asError(error);
    }
  }

  copy(jobs: readonly CopyJob[]): Promise<CopyResult[]> {
    const worker = this.#worker;
    if (worker === undefined) return Promise.reject(this.#failure ?? new Error("closed"));
    worker.onmessage ??= (event) => this.#waiting.shift()?.resolve(event.data);
    worker.onerror ??= (event) => {
      event.preventDefault();
      this.#failure = new Error(event.message);
      this.close();
    };
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      worker.postMessage(jobs);
    });
  }

  /** Stop the worker; batches not answered yet reject, and so do later ones. */
  close(): void {
    this.#worker?.terminate();
    this.#worker = undefined;
    const error = this.#failure ?? new Error("closed");
    for (const waiting of this.#waiting.splice(0)) waiting.reject(error);
  }
}

/**
 * Worker entry: copies batches of small files on a second core while the
 * main thread copies the rest (see `apply.ts`).
 *
 * @module
 */
import { copyFile, type CopyJob, type CopyResult } from "./copy.ts";
import { realDisk } from "./disk.ts";

interface WorkerScope {
  onmessage: ((event: MessageEvent<readonly CopyJob[]>) => void) | null;
  postMessage(message: readonly CopyResult[]): void;
}

const scope = self as unknown as WorkerScope;
scope.onmessage = (event) => {
  // Only small files are sent here, which realDisk copies synchronously.
  scope.postMessage(event.data.map((job) => copyFile(realDisk, job) as CopyResult));
};

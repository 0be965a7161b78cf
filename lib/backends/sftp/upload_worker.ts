/**
 * An upload worker: a thread with an SSH connection of its own that writes
 * the big files it is given ({@link uploadFile}), so that the cipher of two
 * big files runs on two cores. Started by `upload_pool.ts`; it inherits the
 * run's permissions.
 *
 * Messages in: `{ options, chunk }` once (how to connect; with `--bwlimit`,
 * the rate's piece size), then `{ id, write, abs, temp }`; out: `{ id, result }`.
 * Under `--bwlimit` the run's one rate is on the main thread: before each
 * request the worker sends `{ take: BYTES }` and waits for `{ granted: true }`
 * (answered in order).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { asError } from "../../core/error.ts";
import type { Rate } from "../../core/rate.ts";
import type { FileWrite } from "../../core/replica.ts";
import { connectSsh, type SshOptions, SshRemote } from "./connect.ts";
import { uploadFile } from "./upload.ts";

let remote: SshRemote | undefined;
let options: SshOptions | undefined;
/** The main thread's rate, asked by message; undefined: no limit. */
let rate: Rate | undefined;
/** Takes sent and not granted yet, oldest first. */
const takes: (() => void)[] = [];

self.onmessage = async (event: MessageEvent) => {
  const data = event.data as
    | { options: SshOptions; chunk?: number }
    | { granted: true }
    | { id: number; write: FileWrite; abs: string; temp: string };
  if ("granted" in data) return takes.shift()?.();
  if ("options" in data) {
    options = data.options;
    const chunk = data.chunk;
    rate = chunk === undefined ? undefined : {
      chunk,
      take: (bytes) =>
        new Promise((resolve) => {
          takes.push(resolve);
          self.postMessage({ take: bytes });
        }),
    };
    return;
  }
  try {
    if (remote === undefined) {
      const given = options!;
      const first = await connectSsh(given);
      remote = new SshRemote(first, () => connectSsh(given));
    }
    const link = await remote.link();
    const result = await uploadFile(link, data.write, data.abs, data.temp, undefined, rate);
    self.postMessage({ id: data.id, result });
  } catch (error) {
    const { name, message } = asError(error);
    self.postMessage({ id: data.id, result: { status: "failed", name, message } });
  }
};

/**
 * An upload worker: a thread with an SSH connection of its own that writes
 * the big files it is given ({@link uploadFile}), so that the cipher of two
 * big files runs on two cores. Started by `upload_pool.ts`; it inherits the
 * run's permissions.
 *
 * Messages in: `{ options }` once (how to connect), then
 * `{ id, write, abs, temp }`; out: `{ id, result }`.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { asError } from "../../core/error.ts";
import type { FileWrite } from "../../core/replica.ts";
import { connectSsh, type SshOptions, SshRemote } from "./connect.ts";
import { uploadFile } from "./upload.ts";

let remote: SshRemote | undefined;
let options: SshOptions | undefined;

self.onmessage = async (event: MessageEvent) => {
  const data = event.data as
    | { options: SshOptions }
    | { id: number; write: FileWrite; abs: string; temp: string };
  if ("options" in data) {
    options = data.options;
    return;
  }
  try {
    if (remote === undefined) {
      const given = options!;
      const first = await connectSsh(given);
      remote = new SshRemote(first, () => connectSsh(given));
    }
    const link = await remote.link();
    const result = await uploadFile(link, data.write, data.abs, data.temp);
    self.postMessage({ id: data.id, result });
  } catch (error) {
    const { name, message } = asError(error);
    self.postMessage({ id: data.id, result: { status: "failed", name, message } });
  }
};

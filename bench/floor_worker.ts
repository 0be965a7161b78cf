/**
 * A worker of `floor.ts --threads N`: walks the trees it is sent (one
 * message, an array of paths) and answers with the entries seen.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { walk } from "./floor.ts";

self.onmessage = (event: MessageEvent<string[]>) => {
  let entries = 0;
  for (const root of event.data) entries += walk(root);
  self.postMessage(entries);
};

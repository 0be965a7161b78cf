/**
 * Small helpers for errors caught from the file system.
 *
 * @module
 */

/** `error` as an `Error` (thrown non-errors are wrapped). */
export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * One-line reason for a log line, to go inside parentheses.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reason } from "./error.ts";
 * const denied = new Error("Permission denied (os error 13): open '/r/a.txt'");
 * assert.equal(reason(denied), "Permission denied (os error 13)");
 * assert.equal(reason(new Error('Module not found "file:///w.ts".')), 'Module not found "file:///w.ts"');
 * ```
 */
export function reason(error: Error): string {
  // Deno's messages end with the operation and its absolute paths; the log
  // line already names the path, so keep the part before ": op '...'".
  const message = error.message.split("\n")[0] ?? "";
  const cut = message.search(/: [a-z_]+ '/);
  // It goes inside parentheses mid-sentence: no full stop of its own.
  return (cut > 0 ? message.slice(0, cut) : message).replace(/\.$/, "") || error.name;
}

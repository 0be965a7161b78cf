/**
 * Small helpers for errors caught from the file system.
 *
 * @module
 */

/** `error` as an `Error` (thrown non-errors are wrapped). */
export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** One-line reason for a log line, e.g. `Permission denied (os error 13)`. */
export function reason(error: Error): string {
  // Deno's messages end with the operation and its absolute paths; the log
  // line already names the path, so keep the part before ": op '...'".
  const message = error.message.split("\n")[0] ?? "";
  const cut = message.search(/: [a-z_]+ '/);
  return (cut > 0 ? message.slice(0, cut) : message) || error.name;
}

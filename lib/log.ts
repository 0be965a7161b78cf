/**
 * Logger setup: one line per record, the same text to the log file and the
 * console, in the original Python tool's format:
 *
 * `2026-11-26 15:04:05,123 [INFO]: File docs/a.txt has been copied.`
 *
 * On the console INFO goes to stdout, WARNING and ERROR to stderr (LogTape's
 * default console mapping).
 *
 * @module
 */
import {
  configure,
  dispose,
  getConsoleSink,
  getLogger,
  getTextFormatter,
  type Logger,
  type TextFormatter,
} from "npm:@logtape/logtape@^2.4.2";
import { getStreamFileSink } from "npm:@logtape/file@^2.3.10";

const CATEGORY = ["folder-mirror"];

function pad(value: number, width = 2): string {
  return String(value).padStart(width, "0");
}

/**
 * Local time as `YYYY-MM-DD HH:MM:SS,mmm` (Python logging's `asctime`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatTimestamp } from "./log.ts";
 * assert.ok(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}$/.test(formatTimestamp(0)));
 * ```
 */
export function formatTimestamp(epochMs: number): string {
  const t = new Date(epochMs);
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ` +
    `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())},` +
    pad(t.getMilliseconds(), 3);
}

/** Formats a record as one line ending in `\n`; control characters in
 * interpolated values (a newline in a file name) are escaped. */
export const lineFormatter: TextFormatter = getTextFormatter({
  timestamp: formatTimestamp,
  level: "FULL",
  value: "bare",
  format: ({ timestamp, level, message }) => `${timestamp} [${level}]: ${message}`,
});

/**
 * Route the program's logger to `logFile` (appended to, created if missing)
 * and the console. Call {@link closeLogging} before exiting so buffered lines
 * reach the file.
 *
 * @throws {Deno.errors.NotFound | Deno.errors.PermissionDenied | Error} when the
 * log file cannot be opened for appending; nothing is configured then.
 */
export async function setupLogging(logFile: string): Promise<void> {
  // Open once synchronously so a bad path fails here with a clear error,
  // instead of later inside the stream where the error would be swallowed.
  Deno.openSync(logFile, { append: true, create: true }).close();
  await configure({
    reset: true,
    sinks: {
      file: getStreamFileSink(logFile, { formatter: lineFormatter }),
      console: getConsoleSink({
        formatter: (record) => [lineFormatter(record).trimEnd()],
      }),
    },
    loggers: [
      { category: CATEGORY, lowestLevel: "info", sinks: ["file", "console"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: ["console"] },
    ],
  });
}

/** Flush and close the sinks. Safe to call more than once. */
export async function closeLogging(): Promise<void> {
  await dispose();
}

/** The program's logger. */
export function logger(): Logger {
  return getLogger(CATEGORY);
}

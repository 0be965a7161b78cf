/**
 * Logger setup: one line per record, the same text to the log file and the
 * console, in the original Python tool's format:
 *
 * `2026-11-26 15:04:05,123 [INFO]: File docs/a.txt has been copied.`
 *
 * On the console INFO goes to stdout, WARNING and ERROR to stderr.
 *
 * One small LogTape sink does both: it formats each record once and appends
 * the line to a buffer that is written out (no fsync) when it grows past
 * 64 KiB, 50 ms after the first line that is waiting, and when logging is
 * closed. Logging every action of a 20,000-file copy then costs a fraction of
 * one write per line per destination, and `node:fs` (which `@logtape/file`
 * needs) is not loaded at start-up.
 *
 * @module
 */
import {
  compareLogLevel,
  configure,
  dispose,
  getLogger,
  getTextFormatter,
  type Logger,
  type LogLevel,
  type LogRecord,
  type Sink,
  type TextFormatter,
} from "npm:@logtape/logtape@^2.4.2";
import { asError, reason } from "../core/error.ts";
import { formatTimestamp, printable } from "../core/text.ts";

const CATEGORY = ["folder-mirror"];

/** Formats a record as one line ending in `\n`, interpolated values made
 * {@link printable}. */
export const lineFormatter: TextFormatter = getTextFormatter({
  timestamp: formatTimestamp,
  level: "FULL",
  value: printable,
  format: ({ timestamp, level, message }) => `${timestamp} [${level}]: ${message}`,
});

/** Options of {@link lineSink}. */
export interface LineSinkOptions {
  /** Format of the log file's lines. Default {@link lineFormatter}. */
  readonly fileFormatter?: TextFormatter;
  /** Format of the console's lines. Default {@link lineFormatter}. */
  readonly consoleFormatter?: TextFormatter;
  /**
   * Lowest level written to the file.
   *
   * @default {"info"}
   */
  readonly fileLevel?: LogLevel;
  /**
   * Lowest level written to the console.
   *
   * @default {"info"}
   */
  readonly consoleLevel?: LogLevel;
  /**
   * When it returns a function, console lines go there instead (a progress
   * bar prints them above itself).
   *
   * @default never
   */
  readonly tap?: () => ConsoleLine | undefined;
  /**
   * Called when writing the file starts failing (with the error) and when it
   * works again (undefined). Meanwhile the console still gets every line and
   * the file's lines are dropped.
   *
   * @default nothing
   */
  readonly onFileError?: (error: Error | undefined) => void;
}

const messageOnly = getTextFormatter({
  timestamp: "none",
  value: "bare",
  format: ({ message }) => message,
});

/**
 * A record as one JSON object on one line, for log shippers: `time` (ISO 8601,
 * UTC), `level` (`INFO`, `WARNING`, `ERROR`, `DEBUG`), `message` (the same
 * text as the text format), and `action`, `path`, `bytes` where the record
 * has them; a cycle's summary also has its counts as fields (`copied`,
 * `updated`, `moved`, `removed`, `failed`, `seconds`, …: the record's
 * `counts` property).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonFormatter } from "./log.ts";
 * const line = jsonFormatter({
 *   category: [], level: "info", timestamp: 0, rawMessage: "File {path} has been copied.",
 *   message: ["File ", "a.txt", " has been copied."],
 *   properties: { action: "copy", path: "a.txt", bytes: 3 },
 * });
 * assert.deepEqual(JSON.parse(line), {
 *   time: "1970-01-01T00:00:00.000Z", level: "INFO", message: "File a.txt has been copied.",
 *   action: "copy", path: "a.txt", bytes: 3,
 * });
 * ```
 */
export const jsonFormatter: TextFormatter = (record) => {
  const { action, path, bytes, counts } = record.properties;
  return JSON.stringify({
    time: new Date(record.timestamp).toISOString(),
    level: record.level.toUpperCase(),
    message: messageOnly(record).trimEnd(),
    ...(action === undefined ? {} : { action }),
    ...(path === undefined ? {} : { path }),
    ...(bytes === undefined ? {} : { bytes }),
    ...(typeof counts === "object" && counts !== null ? counts : {}),
  }) + "\n";
};

/** The log file: written with sync calls (a regular file never blocks for long). */
export interface FileWriter {
  writeSync(bytes: Uint8Array): number;
}

/** A console stream: written asynchronously, since a pipe may be full (or non-blocking). */
export interface ConsoleWriter {
  write(bytes: Uint8Array): Promise<number>;
}

const FLUSH_BYTES = 64 * 1024;
const FLUSH_MS = 50;

/**
 * A sink that formats each record once and writes the line to `file` (if
 * any) and to the console stream for its level (`out` for DEBUG and INFO,
 * `err` above), buffered as described in the module documentation. Lines
 * keep their order across `out` and `err`. A console that cannot be written
 * to (closed, or a reader that went away) never stops the program; the file
 * still gets every line. Disposing it (async) writes out what is buffered.
 */
export function lineSink(
  file: FileWriter | undefined,
  out: ConsoleWriter,
  err: ConsoleWriter,
  options: LineSinkOptions = {},
): Sink & AsyncDisposable & { flush(): void; reopened(): void } {
  const fileFormatter = options.fileFormatter ?? lineFormatter;
  const consoleFormatter = options.consoleFormatter ?? lineFormatter;
  const fileLevel = options.fileLevel ?? "info";
  const consoleLevel = options.consoleLevel ?? "info";
  const encoder = new TextEncoder();
  let fileLines: string[] = [];
  let consoleLines: string[] = [];
  let consoleWriter = out;
  let consoleDone: Promise<void> = Promise.resolve();
  let pending = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  /** The file cannot be written now; `cut`: it ends in the middle of a line. */
  let failing = false, cut = false;
  const writeFile = (text: string) => {
    if (file === undefined) return;
    const bytes = encoder.encode(cut ? `\n${text}` : text);
    let at = 0;
    try {
      while (at < bytes.length) at += file.writeSync(bytes.subarray(at));
    } catch (error) {
      // A full disk, say: mirroring goes on; the console has every line.
      if (at > 0) cut = bytes[at - 1] !== 10;
      if (!failing) {
        options.onFileError?.(error instanceof Error ? error : new Error(String(error)));
      }
      failing = true;
      return;
    }
    cut = false;
    if (failing) options.onFileError?.(undefined);
    failing = false;
  };
  const flushConsole = () => {
    if (consoleLines.length === 0) return;
    const tap = options.tap?.();
    if (tap) {
      for (const line of consoleLines) tap(line, consoleWriter === err);
      consoleLines = [];
      return;
    }
    const bytes = encoder.encode(consoleLines.join(""));
    const writer = consoleWriter;
    consoleLines = [];
    consoleDone = consoleDone.then(async () => {
      for (let at = 0; at < bytes.length;) at += await writer.write(bytes.subarray(at));
    }).catch(() => {
      // The console is gone (a closed pipe): the log file still has every line.
    });
  };
  const flush = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    pending = 0;
    if (fileLines.length > 0) {
      const text = fileLines.join("");
      fileLines = [];
      writeFile(text);
    }
    flushConsole();
  };
  const sink = (record: LogRecord) => {
    const toFile = file !== undefined && compareLogLevel(record.level, fileLevel) >= 0;
    const toConsole = compareLogLevel(record.level, consoleLevel) >= 0;
    if (!toFile && !toConsole) return;
    const fileLine = toFile ? fileFormatter(record) : "";
    if (toFile) fileLines.push(fileLine);
    pending += fileLine.length;
    if (toConsole) {
      const writer = record.level === "debug" || record.level === "info" ? out : err;
      if (writer !== consoleWriter) {
        flushConsole();
        consoleWriter = writer;
      }
      const line = toFile && consoleFormatter === fileFormatter
        ? fileLine
        : consoleFormatter(record);
      consoleLines.push(line);
      pending += line.length;
    }
    if (pending >= FLUSH_BYTES) {
      flush();
    } else if (timer === undefined) {
      timer = setTimeout(flush, FLUSH_MS);
      Deno.unrefTimer(timer);
    }
  };
  return Object.assign(sink, {
    flush,
    /** The file was opened again: a new file starts on a fresh line. */
    reopened: () => {
      cut = false;
    },
    [Symbol.asyncDispose]: async () => {
      flush();
      await consoleDone;
    },
  });
}

/**
 * Takes one console line (ending in a newline) in place of the console;
 * `toStderr`: it is a WARNING or ERROR line, meant for stderr.
 */
export type ConsoleLine = (line: string, toStderr: boolean) => void;

/**
 * Where console lines go instead of stdout and stderr while something else
 * owns the terminal (a progress bar prints them above itself). Handed to
 * {@link setupLogging} and to whoever draws on the terminal; no global.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConsoleTap } from "./log.ts";
 * const tap = new ConsoleTap();
 * const lines: string[] = [];
 * tap.set((line) => lines.push(line));
 * tap.get()?.("Folder a has been created.", false);
 * assert.deepEqual(lines, ["Folder a has been created."]);
 * tap.set(undefined);
 * assert.equal(tap.get(), undefined);
 * ```
 */
export class ConsoleTap {
  #tap: ConsoleLine | undefined;

  /**
   * Send console lines to `tap` from now on.
   *
   * @param tap receives each console line (undefined: back to stdout and stderr).
   */
  set(tap: ConsoleLine | undefined): void {
    this.#tap = tap;
  }

  /**
   * Where console lines go now.
   *
   * @returns the function given to {@link set}, or undefined for stdout and stderr.
   */
  get(): ConsoleLine | undefined {
    return this.#tap;
  }
}

/** Options of {@link setupLogging}. */
export interface LogOptions {
  /**
   * The log file's format; the console's too when there is no log file.
   *
   * @default {"text"}
   */
  readonly format?: "text" | "json";
  /**
   * How much the console shows: WARNING and up, INFO and up, or DEBUG and up
   * (the log file always gets INFO and up).
   *
   * @default {"normal"}
   */
  readonly console?: "quiet" | "normal" | "verbose";
  /**
   * Where console lines may be diverted (a progress bar).
   *
   * @default never
   */
  readonly tap?: ConsoleTap;
  /**
   * Told of every WARNING and ERROR record (the status file keeps a cycle's
   * errors).
   *
   * @default nothing
   */
  readonly observe?: (record: ProblemRecord) => void;
}

/** A WARNING or ERROR record, as {@link LogOptions.observe} is told of it. */
export interface ProblemRecord {
  /** Its level. */
  readonly level: "warning" | "error";
  /** When it was logged (epoch ms). */
  readonly timestamp: number;
  /** Its message, names as they are (not escaped as in the text format). */
  readonly message: string;
  /** The entry it is about, relative to the roots, where it has one. */
  readonly path?: string;
  /** A WARNING about an action counted as failed (a backup that could not be made). */
  readonly failed?: boolean;
}

/** The log file in use. */
export interface LogFile {
  /**
   * Open the log file's path again (after logrotate moved the file away):
   * later lines go to the file now at that path. If it cannot be opened, the
   * old file is kept and stderr says why.
   */
  reopen(): void;
}

/**
 * Route the program's logger (LogTape category `["folder-mirror"]`, where a
 * {@link Mirror} logs by default) to `logFile` (appended to, created if
 * missing) and the console, one line per record in the program's format.
 * Without a log file (`--log-file -`, for journald or a container runtime)
 * the console gets the lines alone, JSON ones with `format: "json"`.
 * It replaces any LogTape configuration made before. Call
 * {@link closeLogging} before exiting so buffered lines are written. A log
 * file that cannot be written (a full disk) never stops the program: one line
 * on stderr says so, the console keeps every line, and writing resumes when
 * it can (another line says so).
 *
 * @param logFile the log file's path; undefined: none, the console only.
 * @param options see {@link LogOptions}.
 * @returns the log file, to reopen after logrotate moved it (a no-op without one).
 * @throws {Deno.errors.NotFound | Deno.errors.PermissionDenied | Error} when the
 * log file cannot be opened for appending; nothing is configured then.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { closeLogging, logger, setupLogging } from "./log.ts";
 * const dir = Deno.makeTempDirSync();
 * const file = `${dir}/log.txt`;
 * await setupLogging(file, { console: "quiet" });
 * logger().info("File {path} has been copied.", { path: "a.txt" });
 * await closeLogging();
 * assert.match(Deno.readTextFileSync(file), /^[-\d]{10} [:\d]{8},\d{3} \[INFO\]: File a\.txt has been copied\.\n$/);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export async function setupLogging(
  logFile: string | undefined,
  options: LogOptions = {},
): Promise<LogFile> {
  const open = () =>
    logFile === undefined ? undefined : Deno.openSync(logFile, { append: true, create: true });
  let current = open();
  const notice = (text: string) => {
    try {
      Deno.stderr.writeSync(new TextEncoder().encode(`folder-mirror: ${text}\n`));
    } catch {
      // no stderr either
    }
  };
  const file: FileWriter | undefined = current &&
    { writeSync: (bytes) => current!.writeSync(bytes) };
  const consoleLevel = options.console === "quiet"
    ? "warning"
    : options.console === "verbose"
    ? "debug"
    : "info";
  const formatter = options.format === "json" ? jsonFormatter : lineFormatter;
  const sink = lineSink(file, Deno.stdout, Deno.stderr, {
    fileFormatter: formatter,
    ...(file === undefined ? { consoleFormatter: formatter } : {}),
    consoleLevel,
    tap: () => options.tap?.get(),
    onFileError: (error) =>
      notice(
        error === undefined
          ? `the log file '${logFile}' is written again.`
          : `cannot write the log file '${logFile}' (${
            reason(error)
          }); its lines go to the console only until it can be written again.`,
      ),
  });
  await configure({
    reset: true,
    sinks: {
      lines: Object.assign((record: LogRecord) => {
        sink(record);
        if (options.observe && compareLogLevel(record.level, "warning") >= 0) {
          const { path, failed } = record.properties;
          options.observe({
            level: record.level === "warning" ? "warning" : "error",
            timestamp: record.timestamp,
            message: messageOnly(record).trimEnd(),
            ...(typeof path === "string" ? { path } : {}),
            ...(failed === true ? { failed: true } : {}),
          });
        }
      }, {
        [Symbol.asyncDispose]: async () => {
          await sink[Symbol.asyncDispose]();
          current?.close();
        },
      }),
    },
    loggers: [
      {
        category: CATEGORY,
        lowestLevel: consoleLevel === "debug" ? "debug" : "info",
        sinks: ["lines"],
      },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: ["lines"] },
    ],
  });
  return {
    reopen() {
      if (current === undefined) return; // no log file
      sink.flush();
      try {
        const next = open();
        current.close();
        current = next;
        sink.reopened();
      } catch (error) {
        notice(
          `cannot reopen the log file '${logFile}' (${reason(asError(error))}); it is ` +
            "written where it was.",
        );
      }
    },
  };
}

/**
 * Write out buffered lines and close the log file (see {@link setupLogging}).
 * Safe to call more than once.
 *
 * @returns once every line is written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { closeLogging, logger, setupLogging } from "./log.ts";
 * const dir = Deno.makeTempDirSync();
 * const file = `${dir}/log.txt`;
 * await setupLogging(file, { console: "quiet" });
 * logger().info("Cycle finished.");
 * await closeLogging();
 * await closeLogging(); // again: nothing left to do
 * assert.match(Deno.readTextFileSync(file), /\[INFO\]: Cycle finished\.\n$/);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export async function closeLogging(): Promise<void> {
  await dispose();
}

/** The program's logger. */
export function logger(): Logger {
  return getLogger(CATEGORY);
}

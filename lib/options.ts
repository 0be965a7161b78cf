/**
 * Command-line flags -> one typed, frozen {@link Options} object.
 *
 * Parsing is done by commander; this module only declares the flags, keeps
 * commander away from the environment (so `--help` needs no `--allow-env`) and
 * turns every parse failure into a {@link UsageError} with a one-line message.
 *
 * @module
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "npm:commander@^15.1.0";
import { VERSION } from "./version.ts";

/** Validated settings of one run of the program. */
export interface Options {
  /** Folder to mirror. Default `"source"`. */
  readonly source: string;
  /** Folder kept identical to the source. Default `"replica"`. */
  readonly replica: string;
  /** Log file, appended to. Default `"log.txt"`. */
  readonly logFile: string;
  /** Seconds between the starts of two cycles. Default `10`. */
  readonly intervalSeconds: number;
  /** Run one cycle and exit. Default `false`. */
  readonly once: boolean;
  /** A cycle that would delete more replica entries than this deletes none.
   * Default: no limit. */
  readonly maxDelete?: number;
  /** Also mirror changes as file-system events report them. Default `false`. */
  readonly watch: boolean;
  /** One cycle that only logs what it would do. Default `false`. */
  readonly dryRun: boolean;
  /** Compare the trees completely, print differences and tree digests. Default `false`. */
  readonly verify: boolean;
  /** gitignore-style patterns of paths neither copied nor deleted. Default none. */
  readonly exclude: readonly string[];
  /** The log file's format. Default `"text"`. */
  readonly logFormat: "text" | "json";
  /** How much the console shows. Default `"normal"`. */
  readonly console: "quiet" | "normal" | "verbose";
}

/** What {@link parseOptions} returns: options to run with, or text to print and exit 0. */
export type ParseResult =
  | { readonly kind: "run"; readonly options: Options }
  | { readonly kind: "exit"; readonly text: string };

/** A bad flag or value. `message` is one line, meant for stderr. */
export class UsageError extends Error {
  override name = "UsageError";
}

function positiveSeconds(value: string): number {
  const seconds = Number(value);
  if (value.trim() === "" || !Number.isFinite(seconds) || seconds <= 0) {
    throw new InvalidArgumentError("expected a positive number of seconds.");
  }
  return seconds;
}

function count(value: string): number {
  if (!/^\d+$/.test(value.trim())) {
    throw new InvalidArgumentError("expected a whole number (0 or more).");
  }
  return Number(value);
}

function nonEmptyPath(value: string): string {
  if (value === "") throw new InvalidArgumentError("expected a path.");
  return value;
}

function buildCommand(out: string[]): Command {
  return new Command()
    .name("folder-mirror")
    .description(
      "Keep the replica folder an exact copy of the source folder, one way, every interval.",
    )
    .version(VERSION, "--version", "print the version and exit")
    .helpOption("-h, --help", "print this help and exit")
    .option("--source <path>", "folder to mirror", nonEmptyPath, "source")
    .option(
      "--replica <path>",
      "folder kept identical to the source (created if missing)",
      nonEmptyPath,
      "replica",
    )
    .option("--log-file <path>", "log file, appended to", nonEmptyPath, "log.txt")
    .addOption(
      new Option(
        "--log-format <format>",
        "log file format: one text line or one JSON object a record",
      )
        .choices(["text", "json"]).default("text"),
    )
    .option("--quiet", "console: warnings and errors only (the log file keeps everything)", false)
    .option("--verbose", "console: also per-file DEBUG lines (unchanged files)", false)
    .option(
      "--time-interval <seconds>",
      "seconds between cycle starts (fractions allowed)",
      positiveSeconds,
      10,
    )
    .option("--once", "run one cycle and exit (1 if any entry failed)", false)
    .option(
      "--dry-run",
      "scan and plan one cycle, log every action as 'Would ...', change nothing, exit 0",
      false,
    )
    .option(
      "--verify",
      "compare the trees completely (MD5 of every file, no index trusted), print each " +
        "difference and both tree digests, change nothing; exit 0 if identical, 1 if not",
      false,
    )
    .option(
      "--exclude <pattern>",
      "leave paths matching this gitignore-style pattern (relative to the source root: " +
        "'*.tmp', 'node_modules/', '/build') out: neither copied nor deleted from the replica, " +
        "as rsync does; repeatable",
      (pattern: string, patterns: string[]) => [...patterns, pattern],
      [] as string[],
    )
    .option(
      "--watch",
      "also mirror changes within moments, as the file system reports them " +
        "(the interval's full cycle still runs)",
      false,
    )
    .option(
      "--max-delete <count>",
      "a cycle that would delete more replica entries than this deletes none (default: no limit)",
      count,
    )
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({
      // Supplying the writers and colour decisions keeps commander from reading
      // environment variables, which would need --allow-env.
      writeOut: (text) => out.push(text),
      writeErr: (text) => out.push(text),
      outputError: () => {},
      getOutHelpWidth: () => 80,
      getErrHelpWidth: () => 80,
      getOutHasColors: () => false,
      getErrHasColors: () => false,
    });
}

/**
 * Parse the program's arguments (without the program name).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseOptions } from "./options.ts";
 * const result = parseOptions(["--source", "a", "--once"]);
 * if (result.kind === "run") assert.ok(result.options.source === "a");
 * ```
 * @throws {UsageError} on an unknown flag, a missing or bad value.
 */
export function parseOptions(args: readonly string[]): ParseResult {
  const out: string[] = [];
  const command = buildCommand(out);
  try {
    command.parse([...args], { from: "user" });
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    if (error.exitCode === 0) return { kind: "exit", text: out.join("") };
    throw new UsageError(oneLine(error.message));
  }
  const flags = command.opts<{
    source: string;
    replica: string;
    logFile: string;
    timeInterval: number;
    once: boolean;
    maxDelete?: number;
    watch: boolean;
    dryRun: boolean;
    verify: boolean;
    exclude: string[];
    logFormat: "text" | "json";
    quiet: boolean;
    verbose: boolean;
  }>();
  if (flags.quiet && flags.verbose) {
    throw new UsageError("--quiet and --verbose cannot be combined.");
  }
  if (flags.verify && (flags.watch || flags.dryRun)) {
    throw new UsageError("--verify cannot be combined with --watch or --dry-run.");
  }
  if (flags.watch && flags.once) throw new UsageError("--watch and --once cannot be combined.");
  if (flags.watch && flags.dryRun) {
    throw new UsageError("--watch and --dry-run cannot be combined (a dry run is one cycle).");
  }
  return {
    kind: "run",
    options: Object.freeze({
      source: flags.source,
      replica: flags.replica,
      logFile: flags.logFile,
      intervalSeconds: flags.timeInterval,
      once: flags.once,
      watch: flags.watch,
      dryRun: flags.dryRun,
      verify: flags.verify,
      logFormat: flags.logFormat,
      console: flags.quiet ? "quiet" : flags.verbose ? "verbose" : "normal",
      exclude: Object.freeze([...flags.exclude]),
      ...(flags.maxDelete === undefined ? {} : { maxDelete: flags.maxDelete }),
    }),
  };
}

function oneLine(message: string): string {
  return message.replace(/^error: /, "").replace(/\s*\n\s*/g, " ").trim();
}

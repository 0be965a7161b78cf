/**
 * Command-line flags -> one typed, frozen {@link Options} object.
 *
 * Parsing is done by Stricli (it loads in ~5 ms, where commander took ~25 ms
 * of every start); this module only declares the flags, gives Stricli its own
 * output streams (so nothing reads the environment, which would need
 * `--allow-env`) and turns every parse failure into a {@link UsageError} with a
 * one-line message.
 *
 * @module
 */
import {
  ArgumentScannerError,
  buildApplication,
  buildCommand,
  formatMessageForArgumentScannerError,
  run,
  text_en,
} from "npm:@stricli/core@^1.3.0";
import { VERSION } from "../core/version.ts";
import type { Backend } from "../engine/backend.ts";
import { backendOf, BACKENDS } from "../backends/registry.ts";

/** Validated settings of one run of the program. */
export interface Options {
  /**
   * Folder to mirror.
   *
   * @default {"source"}
   */
  readonly source: string;
  /**
   * Folder kept identical to the source, or a replica elsewhere
   * (`s3://BUCKET/PREFIX`, `sftp://USER@HOST/PATH`): see {@link backend}.
   *
   * @default {"replica"}
   */
  readonly replica: string;
  /** The kind of replica `replica` names (the backend that claims it). */
  readonly backend: Backend;
  /** The flags of that backend that were given, by name (see `Backend.flags`). */
  readonly backendFlags: Readonly<Record<string, string | true>>;
  /**
   * Log file, appended to; undefined: none, the console only (`--log-file -`).
   *
   * @default {"log.txt"}
   */
  readonly logFile: string | undefined;
  /**
   * What the program remembers between runs (given explicitly when there is
   * no log file).
   *
   * @default the log file's path with `.state` appended
   */
  readonly stateFile: string;
  /**
   * A JSON document of what the mirror is doing and did, replaced after each
   * cycle (see `status.ts`).
   *
   * @default none
   */
  readonly statusFile?: string;
  /**
   * The same numbers in Prometheus' text format (node_exporter's textfile
   * collector).
   *
   * @default none
   */
  readonly metricsFile?: string;
  /**
   * Seconds between the starts of two cycles.
   *
   * @default {10}
   */
  readonly intervalSeconds: number;
  /**
   * Run one cycle and exit.
   *
   * @default {false}
   */
  readonly once: boolean;
  /**
   * A cycle that would delete more replica entries than this deletes none.
   *
   * @default no limit
   */
  readonly maxDelete?: number;
  /**
   * An empty source may empty the replica in this run, even though no earlier
   * cycle recorded this source folder (see `guards.ts`).
   *
   * @default {false}
   */
  readonly acceptEmptySource: boolean;
  /**
   * Also mirror changes as file-system events report them.
   *
   * @default {false}
   */
  readonly watch: boolean;
  /**
   * One cycle that only logs what it would do.
   *
   * @default {false}
   */
  readonly dryRun: boolean;
  /**
   * Compare the trees completely, print differences and tree digests.
   *
   * @default {false}
   */
  readonly verify: boolean;
  /**
   * gitignore-style patterns of paths neither copied nor deleted.
   *
   * @default none
   */
  readonly exclude: readonly string[];
  /**
   * Files of gitignore-style patterns (`--exclude-from`), in the order given;
   * their rules come before those of {@link exclude}, so a later rule wins.
   *
   * @default none
   */
  readonly excludeFrom: readonly string[];
  /**
   * Where what a cycle deletes or overwrites is kept: a folder on the
   * replica's side (see `Backups`), one folder per full cycle in it.
   *
   * @default nowhere: it is gone
   */
  readonly backupDir?: string;
  /**
   * With {@link backupDir}: keep this many of the newest cycle folders.
   *
   * @default all of them
   */
  readonly backupKeep?: number;
  /**
   * Bytes per second written to the replica at most (file content), over all
   * writes of the run (`--bwlimit`, in rsync's units).
   *
   * @default no limit
   */
  readonly bwlimit?: number;
  /**
   * The log file's format (the console's too when there is no log file).
   *
   * @default {"text"}
   */
  readonly logFormat: "text" | "json";
  /**
   * How much the console shows.
   *
   * @default {"normal"}
   */
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

/** The shortest interval: shorter ones would spin without rest. */
export const MIN_INTERVAL_SECONDS = 0.05;

function positiveSeconds(value: string): number {
  // Decimal only: `0x10` is not 16 s, and `1e-9` is refused by the floor.
  const text = value.trim();
  const seconds = Number(text);
  if (!/^(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) || !Number.isFinite(seconds)) {
    throw new Error("expected a number of seconds (such as 10 or 0.5)");
  }
  if (seconds < MIN_INTERVAL_SECONDS) {
    throw new Error(`expected at least ${MIN_INTERVAL_SECONDS} seconds`);
  }
  return seconds;
}

function count(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new Error("expected a whole number (0 or more)");
  return Number(value);
}

function positiveCount(value: string): number {
  const n = count(value);
  if (n < 1) throw new Error("expected a whole number, 1 or more");
  return n;
}

/** rsync's `--bwlimit` units: a bare number is KiB; K, M, G (KiB...) powers of 1024, KB, MB, GB of 1000. */
const RATE_UNITS: Readonly<Record<string, number>> = {
  "": 1024,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
};

/** The least rate (bytes per second) but 0, as rsync's. */
export const MIN_BWLIMIT = 512;

/**
 * A `--bwlimit` value in bytes per second, in rsync's units (case does not
 * matter); 0: no limit.
 */
export function bytesPerSecond(value: string): number {
  const match = /^(\d+\.?\d*|\.\d+)([a-z]*)$/i.exec(value.trim());
  const unit = match ? RATE_UNITS[match[2]!.toLowerCase()] : undefined;
  if (match === null || unit === undefined) {
    throw new Error(
      "expected a rate such as 500 (KiB/s), 1.5M (MiB/s) or 10MB (MB/s); 0: no limit",
    );
  }
  const rate = Math.round(Number(match[1]) * unit);
  if (rate !== 0 && rate < MIN_BWLIMIT) {
    throw new Error(`expected at least ${MIN_BWLIMIT} bytes per second (0: no limit)`);
  }
  return rate;
}

function nonEmptyPath(value: string): string {
  if (value === "") throw new Error("expected a path");
  return value;
}

/** The flags as Stricli hands them over (absent booleans are undefined). */
interface Flags {
  readonly source: string;
  readonly replica: string;
  readonly logFile: string;
  readonly stateFile?: string;
  readonly statusFile?: string;
  readonly metricsFile?: string;
  readonly logFormat: "text" | "json";
  readonly quiet?: boolean;
  readonly verbose?: boolean;
  readonly timeInterval: number;
  readonly once?: boolean;
  readonly dryRun?: boolean;
  readonly verify?: boolean;
  readonly exclude?: readonly string[];
  readonly excludeFrom?: readonly string[];
  readonly watch?: boolean;
  readonly maxDelete?: number;
  readonly acceptEmptySource?: boolean;
  readonly backupDir?: string;
  readonly backupKeep?: number;
  readonly bwlimit?: number;
}

const path = (brief: string, fallback: string) => ({
  kind: "parsed" as const,
  parse: nonEmptyPath,
  brief,
  default: fallback,
  placeholder: "path",
});
const optionalPath = (brief: string) => ({
  kind: "parsed" as const,
  parse: nonEmptyPath,
  brief,
  optional: true as const,
  placeholder: "path",
});
const toggle = (brief: string) => ({
  kind: "boolean" as const,
  brief,
  optional: true as const,
  withNegated: false,
});

/** The backends' flags, as Stricli takes them (all optional: a backend applies its defaults). */
function backendFlags(): Record<string, unknown> {
  const flags: Record<string, unknown> = {};
  for (const backend of BACKENDS) {
    for (const [name, flag] of Object.entries(backend.flags)) {
      flags[name] = flag.toggle
        ? toggle(flag.brief)
        : text(flag.brief, flag.placeholder, flag.path);
    }
  }
  return flags;
}

const text = (brief: string, placeholder: string, isPath = false) => ({
  kind: "parsed" as const,
  parse: isPath ? nonEmptyPath : String,
  brief,
  optional: true as const,
  placeholder,
});

/** The application, with `received` called with the flags of a valid command line
 * (`args`: that command line, for messages). */
function buildApp(args: readonly string[], received: (flags: Flags) => void) {
  const command = buildCommand({
    func: (flags: Flags) => received(flags),
    parameters: {
      flags: {
        source: path("folder to mirror", "source"),
        replica: path(
          "folder kept identical to the source (made if missing), or " +
            BACKENDS.filter((backend) => backend.name !== "local").map((backend) => backend.form)
              .join(" or "),
          "replica",
        ),
        logFile: path("log file, appended to; - for none (the console only)", "log.txt"),
        stateFile: optionalPath(
          "what is remembered between runs (default: the log file's path + .state; " +
            "needed with --log-file -)",
        ),
        statusFile: optionalPath(
          "a JSON status (state, last cycle and last success, counts, errors), replaced " +
            "after each cycle through path.tmp",
        ),
        metricsFile: optionalPath(
          "the same numbers in Prometheus' text format (node_exporter's textfile collector), " +
            "replaced through path.tmp",
        ),
        logFormat: {
          kind: "enum",
          values: ["text", "json"],
          brief: "log file format (the console's with --log-file -): a text line or a JSON " +
            "object per record",
          default: "text",
        },
        quiet: toggle("console: warnings and errors only (the log file gets all)"),
        verbose: toggle("console: also a DEBUG line per unchanged file"),
        timeInterval: {
          kind: "parsed",
          parse: positiveSeconds,
          brief: "seconds between cycle starts (fractions allowed)",
          default: "10",
          placeholder: "seconds",
        },
        once: toggle("run one cycle and exit (1 if anything failed)"),
        dryRun: toggle("log one cycle's actions as 'Would ...', change nothing, exit 0"),
        verify: toggle("read both trees in full, print differences and tree digests"),
        exclude: {
          kind: "parsed",
          parse: String,
          brief: "gitignore-style pattern of paths neither copied nor deleted; repeatable",
          variadic: true,
          optional: true,
          placeholder: "pattern",
        },
        excludeFrom: {
          kind: "parsed",
          parse: nonEmptyPath,
          brief: "file of gitignore-style patterns, one a line (rsync's '+ '/'- ' prefixes " +
            "are read as names), read again when it changes; before --exclude's; repeatable",
          variadic: true,
          optional: true,
          placeholder: "file",
        },
        watch: toggle("also mirror changes within moments, as the file system reports them"),
        maxDelete: {
          kind: "parsed",
          parse: count,
          brief: "a cycle that would delete more entries than this deletes none",
          optional: true,
          placeholder: "count",
        },
        backupDir: {
          kind: "parsed",
          parse: nonEmptyPath,
          brief: "keep what a cycle deletes or overwrites in DIR/<cycle start, UTC>/ (on the " +
            "replica's side: its file system, bucket or host)",
          optional: true,
          placeholder: "dir",
        },
        backupKeep: {
          kind: "parsed",
          parse: positiveCount,
          brief: "with --backup-dir: keep the newest N cycle folders, remove older ones",
          optional: true,
          placeholder: "count",
        },
        bwlimit: {
          kind: "parsed",
          parse: bytesPerSecond,
          brief: "bytes written to the replica per second at most, over all writes: KiB, or " +
            "with K, M, G (powers of 1024) or KB, MB, GB (of 1000); 0: no limit",
          optional: true,
          placeholder: "rate",
        },
        acceptEmptySource: toggle(
          "this run may empty the replica although the source is empty and no earlier " +
            "cycle recorded it (never put it in a unit file)",
        ),
        // Typed as nothing: their values are read by name (they are not in `Flags`).
        ...(backendFlags() as Record<never, never>),
      },
      positional: { kind: "tuple", parameters: [] },
    },
    docs: {
      brief: "Keep the replica folder an exact copy of the source folder, one way, every interval.",
    },
  });
  return buildApplication(command, {
    name: "folder-mirror",
    versionInfo: { currentVersion: VERSION },
    scanner: { caseStyle: "allow-kebab-for-camel" },
    documentation: { caseStyle: "convert-camel-to-kebab" },
    localization: {
      loadText: () => ({
        ...text_en,
        exceptionWhileParsingArguments: (error: unknown) => describe(error, args),
      }),
    },
  });
}

/** `timeInterval` -> `time-interval`: flags as they are typed. */
function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

/** A scanning failure in one line, naming flags as they are typed (`args`: the command line). */
function describe(error: unknown, args: readonly string[]): string {
  if (!(error instanceof ArgumentScannerError)) return String(error);
  return formatMessageForArgumentScannerError(error, {
    UnexpectedPositionalError: ({ input }) => {
      const at = args.indexOf(input);
      const flag = at >= 2 && args[at - 2]?.startsWith("--") ? args[at - 2] : undefined;
      return `unexpected argument '${input}'` +
        (flag === "--exclude"
          ? ": each pattern needs its own --exclude (--exclude a --exclude b)"
          : flag === "--exclude-from"
          ? ": each file needs its own --exclude-from (--exclude-from a --exclude-from b)"
          : `: every flag takes at most one value${
            flag ? ` (${flag} took '${args[at - 1]}')` : ""
          }`);
    },
    ArgumentParseError: ({ externalFlagNameOrPlaceholder: flag, input, exception }) =>
      `--${flag} "${input}": ${exception instanceof Error ? exception.message : exception}`,
    UnexpectedFlagError: ({ externalFlagName: flag }) => `--${kebab(flag)} was given twice`,
    FlagNotFoundError: ({ input, corrections }) =>
      `No flag registered for --${input}` +
      (corrections.length === 0
        ? ""
        : `, did you mean ${corrections.map((name) => `--${kebab(name)}`).join(" or ")}?`),
  });
}

/**
 * Parse the program's arguments (without the program name).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseOptions } from "./options.ts";
 * const result = await parseOptions(["--source", "a", "--once"]);
 * if (result.kind === "run") assert.ok(result.options.source === "a");
 * ```
 * @throws {UsageError} on an unknown flag, a missing or bad value.
 */
export async function parseOptions(args: readonly string[]): Promise<ParseResult> {
  let parsed: Flags | undefined;
  const out: string[] = [], err: string[] = [];
  const context = {
    process: {
      stdout: { write: (text: string) => void out.push(text) },
      stderr: { write: (text: string) => void err.push(text) },
      exitCode: undefined as number | string | null | undefined,
    },
  };
  await run(buildApp(args, (flags) => parsed = flags), args, context);
  if (parsed === undefined) {
    if (err.length === 0 && Number(context.process.exitCode ?? 0) === 0) {
      return { kind: "exit", text: out.join("") }; // --help, --version
    }
    const message = err.join(" ").replace(/\s*\n\s*/g, " ").trim();
    throw new UsageError(/[.?!]$/.test(message) ? message : `${message}.`);
  }
  const flags = parsed;
  if (flags.quiet && flags.verbose) {
    throw new UsageError("--quiet and --verbose cannot be combined.");
  }
  if (flags.verify && (flags.watch || flags.dryRun)) {
    throw new UsageError("--verify cannot be combined with --watch or --dry-run.");
  }
  if (flags.logFile === "-" && flags.stateFile === undefined) {
    throw new UsageError(
      "--log-file -: with no log file, the state file needs a path: give --state-file.",
    );
  }
  for (
    const [flag, path] of [["--status-file", flags.statusFile], [
      "--metrics-file",
      flags.metricsFile,
    ]]
  ) {
    // `-` is the console only for the log; a status or metrics file is a file (./- names one).
    if (path === "-") {
      throw new UsageError(`${flag} -: give a file's path (./- for a file named -).`);
    }
  }
  if (flags.watch && flags.once) throw new UsageError("--watch and --once cannot be combined.");
  if (flags.watch && flags.dryRun) {
    throw new UsageError("--watch and --dry-run cannot be combined (a dry run is one cycle).");
  }
  if (flags.backupKeep !== undefined && flags.backupDir === undefined) {
    throw new UsageError("--backup-keep needs --backup-dir.");
  }
  if (flags.backupDir !== undefined && flags.verify) {
    throw new UsageError("--backup-dir cannot be combined with --verify (it changes nothing).");
  }
  /** A backend's flag, as given (they are not in {@link Flags}). */
  const valueOf = (name: string) => (flags as unknown as Record<string, unknown>)[name];
  const backend = backendOf(flags.replica);
  if (backend === undefined) {
    throw new UsageError(
      `--replica: '${flags.replica}' is not a folder here (a colon before the first slash names ` +
        `a replica elsewhere: ${
          BACKENDS.map((b) => b.form).filter((f) => f.includes(":"))
            .join(", ")
        }; write ./${flags.replica} for a folder).`,
    );
  }
  // A backend's flags with another backend: a mistake worth saying.
  for (const other of BACKENDS) {
    if (other === backend) continue;
    const given = Object.keys(other.flags).find((name) => valueOf(name) !== undefined);
    if (given) throw new UsageError(`--${kebab(given)} is only for a replica ${other.form}.`);
  }
  if (backend.noWatch !== undefined && flags.watch) {
    throw new UsageError(`--watch is for a local replica only (${backend.noWatch}).`);
  }
  const given: Record<string, string | true> = {};
  for (const name of Object.keys(backend.flags)) {
    const value = valueOf(name);
    if (typeof value === "string" || value === true) given[name] = value;
  }
  return {
    kind: "run",
    options: Object.freeze({
      source: flags.source,
      replica: flags.replica,
      backend,
      backendFlags: Object.freeze(given),
      logFile: flags.logFile === "-" ? undefined : flags.logFile,
      stateFile: flags.stateFile ?? `${flags.logFile}.state`,
      ...(flags.statusFile === undefined ? {} : { statusFile: flags.statusFile }),
      ...(flags.metricsFile === undefined ? {} : { metricsFile: flags.metricsFile }),
      intervalSeconds: flags.timeInterval,
      once: flags.once ?? false,
      watch: flags.watch ?? false,
      dryRun: flags.dryRun ?? false,
      verify: flags.verify ?? false,
      logFormat: flags.logFormat,
      console: flags.quiet ? "quiet" : flags.verbose ? "verbose" : "normal",
      exclude: Object.freeze([...flags.exclude ?? []]),
      excludeFrom: Object.freeze([...flags.excludeFrom ?? []]),
      ...(flags.maxDelete === undefined ? {} : { maxDelete: flags.maxDelete }),
      acceptEmptySource: flags.acceptEmptySource ?? false,
      ...(flags.backupDir === undefined ? {} : { backupDir: flags.backupDir }),
      ...(flags.backupKeep === undefined ? {} : { backupKeep: flags.backupKeep }),
      ...(flags.bwlimit ? { bwlimit: flags.bwlimit } : {}),
    }),
  };
}

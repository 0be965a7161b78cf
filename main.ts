/**
 * folder-mirror: keep a replica folder an exact copy of a source folder.
 *
 * `deno run --allow-read --allow-write main.ts [--source DIR] [--replica DIR]
 *  [--log-file FILE] [--time-interval SECONDS] [--once]`
 *
 * flags -> options -> checks -> cycle loop -> exit code. The only place that exits.
 *
 * @module
 */
import { realDisk } from "./lib/disk.ts";
import { reason } from "./lib/error.ts";
import { excludeMatcher } from "./lib/exclude.ts";
import { realPathOf, refusal } from "./lib/guard.ts";
import { LockedError, lockFolder } from "./lib/lock.ts";
import { closeLogging, logger, setupLogging } from "./lib/log.ts";
import { Hints, runLoop } from "./lib/loop.ts";
import { type Options, parseOptions, UsageError } from "./lib/options.ts";
import { MirrorState, runningMirrorOf, StateFileError } from "./lib/state.ts";
import { Mirror } from "./lib/sync.ts";
import type { Roots } from "./lib/entry.ts";
import { VERSION } from "./lib/version.ts";
import { OWN_WRITE_MS, RootWatches } from "./lib/watch.ts";

/** Exit codes. */
const OK = 0, PARTIAL = 1, USAGE = 2;

const encoder = new TextEncoder();

function printError(message: string): void {
  Deno.stderr.writeSync(encoder.encode(`folder-mirror: ${message}\n`));
}

/** `--verify`: print the differences and both tree digests; 0 if identical. */
async function verify(options: Options): Promise<number> {
  const { verifyTrees } = await import("./lib/verify.ts"); // loads node:crypto: only here
  const result = await verifyTrees(
    realPathOf(options.source),
    realPathOf(options.replica),
    await excludeMatcher(options.exclude),
  );
  const lines = [
    ...result.differences,
    `source tree digest: ${result.sourceDigest}`,
    `replica tree digest: ${result.replicaDigest}`,
    result.differences.length === 0
      ? "identical"
      : `${result.differences.length} difference${result.differences.length === 1 ? "" : "s"}`,
  ];
  Deno.stdout.writeSync(encoder.encode(lines.map((line) => `${line}\n`).join("")));
  return result.differences.length === 0 ? OK : PARTIAL;
}

/** What a run holds on to: the replica's lock and its state. */
interface Claim {
  /** Held open (and locked) for the whole run; undefined in a dry run. */
  readonly replicaLock: Deno.FsFile | undefined;
  readonly state: MirrorState;
  /** Why the state file's content was set aside, if it was. */
  readonly warning: string | undefined;
  /** The replica folder did not exist and was made. */
  readonly createdReplica: boolean;
}

/**
 * One writer per replica: lock its root folder (made first if missing) and
 * open the state file, locked too. A dry run writes neither, so it takes no
 * lock and only reads the state. Returns a one-line refusal on failure.
 */
async function claim(options: Options, roots: Roots): Promise<Claim | string> {
  const lock = (): Deno.FsFile => lockFolder(roots.replica);
  const busy = async (error: unknown) => {
    if (!(error instanceof LockedError)) {
      return `--replica: cannot lock '${options.replica}': ${reason(error as Error)}.`;
    }
    // Who it is can be told when it is the same command run twice (same state file).
    const pid = await runningMirrorOf(options.stateFile, roots.replica);
    return `--replica: '${options.replica}' is being written by another running mirror${
      pid === undefined ? "" : ` (pid ${pid})`
    }.`;
  };
  const exists = (() => {
    try {
      Deno.lstatSync(roots.replica);
      return true;
    } catch {
      return false;
    }
  })();
  let replicaLock: Deno.FsFile | undefined;
  if (!options.dryRun && exists) {
    try {
      replicaLock = lock();
    } catch (error) {
      return await busy(error);
    }
  }
  let opened: { state: MirrorState; warning?: string };
  try {
    opened = await MirrorState.open(options.stateFile, roots, { readOnly: options.dryRun });
  } catch (error) {
    replicaLock?.close();
    if (!(error instanceof StateFileError)) throw error;
    return `--state-file: ${error.message}.`;
  }
  if (!options.dryRun && !exists) {
    try {
      Deno.mkdirSync(roots.replica, { recursive: true });
      replicaLock = lock();
    } catch (error) {
      opened.state.close();
      return error instanceof LockedError
        ? await busy(error)
        : `--replica: cannot create '${options.replica}': ${reason(error as Error)}.`;
    }
  }
  return {
    replicaLock,
    state: opened.state,
    warning: opened.warning,
    createdReplica: !options.dryRun && !exists,
  };
}

async function main(args: string[]): Promise<number> {
  let options: Options;
  try {
    const parsed = await parseOptions(args);
    if (parsed.kind === "exit") {
      Deno.stdout.writeSync(encoder.encode(parsed.text));
      return OK;
    }
    options = parsed.options;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    printError(`${error.message} (see --help)`);
    return USAGE;
  }
  const refused = refusal(options);
  if (refused !== undefined) {
    printError(refused);
    return USAGE;
  }
  if (options.verify) return await verify(options);
  const roots = { source: realPathOf(options.source), replica: realPathOf(options.replica) };
  const claimed = await claim(options, roots);
  if (typeof claimed === "string") {
    printError(claimed);
    return USAGE;
  }
  const { state, replicaLock } = claimed;
  try {
    await setupLogging(options.logFile, { format: options.logFormat, console: options.console });
  } catch (error) {
    printError(`--log-file: cannot open '${options.logFile}': ${reason(error as Error)}.`);
    return USAGE;
  }

  const log = logger();
  const stop = new AbortController();
  const onSignal = (name: Deno.Signal) => () => stop.abort(name);
  const listeners = (["SIGINT", "SIGTERM"] as const).map((name) => {
    const listener = onSignal(name);
    Deno.addSignalListener(name, listener);
    return [name, listener] as const;
  });
  log.info(
    "Mirror started (version {version}): source {source}, replica {replica}, " +
      "log file {logFile}, every {interval} s{mode}.",
    {
      version: VERSION,
      source: options.source,
      replica: options.replica,
      logFile: options.logFile,
      interval: options.intervalSeconds,
      mode: options.dryRun
        ? ", dry run"
        : options.once
        ? ", one cycle"
        : options.watch
        ? ", watching for changes"
        : "",
    },
  );
  if (claimed.createdReplica) {
    log.info("Replica folder {path} has been created.", { action: "mkdir", path: options.replica });
  }
  if (claimed.warning !== undefined) {
    log.warn(
      "The state file {path} was set aside: {why}; this run starts afresh (it reads every " +
        "file it compares once).",
      { action: "state", path: options.stateFile, why: claimed.warning },
    );
  }
  const mirror = new Mirror(roots, realDisk, log, {
    maxDelete: options.maxDelete,
    dryRun: options.dryRun,
    exclude: options.exclude,
    progress: options.console !== "quiet",
    watchingReplica: options.watch,
    state,
  });
  // This run's id is recorded before its first temp file is made.
  if (!options.dryRun) await mirror.saveState();
  let code = OK;
  if (options.dryRun) {
    await mirror.cycle(stop.signal); // changes nothing: exit 0 whatever it found
  } else if (options.once) {
    code = (await mirror.cycle(stop.signal)).failed > 0 ? PARTIAL : OK;
  } else {
    const hints = new Hints();
    // Events in the source are looked at at once; in the replica too (someone
    // else's edits are reverted within moments), except where the mirror has
    // just written: there, a second later, and only if the path is no longer
    // as the mirror left it.
    const replicaEvents = (paths: ReadonlySet<string>) => {
      const { foreign, own } = mirror.splitReplicaEvents(paths);
      hints.add(foreign);
      if (own.length === 0) return;
      const later = () => hints.add(mirror.changedSinceWritten(own));
      Deno.unrefTimer(setTimeout(later, OWN_WRITE_MS));
    };
    const watches = new RootWatches(
      options.watch
        ? [
          { root: roots.source, onBatch: (paths) => hints.add(paths) },
          {
            root: roots.replica,
            onBatch: replicaEvents,
            ignore: (path) => state.temps.holds(path),
          },
        ]
        : [],
      (root, error) =>
        log.warn(
          "Cannot watch {path} for changes ({reason}); the full cycle every {interval} s " +
            "still mirrors it.",
          { action: "watch", path: root, reason: reason(error), interval: options.intervalSeconds },
        ),
    );
    watches.ensure();
    await runLoop(
      async (signal) => {
        await mirror.cycle(signal);
        watches.ensure();
      },
      options.intervalSeconds * 1000,
      stop.signal,
      options.watch
        ? { hints, cycle: (paths, signal) => mirror.partialCycle(paths, signal) }
        : undefined,
    );
    watches.close();
  }
  if (stop.signal.aborted) log.info("Mirror stopped by {signal}.", { signal: stop.signal.reason });
  for (const [name, listener] of listeners) Deno.removeSignalListener(name, listener);
  state.close();
  replicaLock?.close();
  await closeLogging();
  return code;
}

try {
  Deno.exit(await main(Deno.args));
} catch (error) {
  printError(
    `unexpected error: ${reason(error instanceof Error ? error : new Error(String(error)))}`,
  );
  Deno.exit(PARTIAL);
}

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
import { reason } from "./lib/core/error.ts";
import { excludeMatcher, isExcludedFolder } from "./lib/core/exclude.ts";
import { ExcludeFiles } from "./lib/cli/exclude_from.ts";
import { closeLogging, ConsoleTap, type LogFile, logger, setupLogging } from "./lib/cli/log.ts";
import { printable } from "./lib/core/text.ts";
import { CopyProgress } from "./lib/cli/progress.ts";
import { runLoop } from "./lib/engine/loop.ts";
import { type Options, parseOptions, UsageError } from "./lib/cli/options.ts";
import { Claim } from "./lib/cli/claim.ts";
import { Mirror } from "./lib/engine/mirror.ts";
import { VERSION } from "./lib/core/version.ts";
import { absolutePath, stablePathOf } from "./lib/core/paths.ts";
import { LocalTree } from "./lib/backends/local/local.ts";
import { refusal } from "./lib/cli/refusal.ts";
import { RunStatus, StatusFiles } from "./lib/cli/status.ts";
import type { ReplicaSession } from "./lib/engine/backend.ts";

/** Exit codes (see the README's table). */
const OK = 0, PARTIAL = 1, USAGE = 2, LEFT_BEHIND = 24;

const encoder = new TextEncoder();

function printError(message: string): void {
  Deno.stderr.writeSync(encoder.encode(`folder-mirror: ${message}\n`));
}

/**
 * Whether this process runs as root, where it may ask (`--allow-sys=uid`;
 * never a prompt): Deno tells the user id only with that permission, and
 * `/proc/self` only with `--allow-all`.
 */
function runsAsRoot(): boolean {
  if (Deno.permissions.querySync({ name: "sys", kind: "uid" }).state !== "granted") return false;
  return Deno.uid() === 0;
}

/** `--verify`: print the differences and both tree digests; 0 if identical. */
async function verify(
  options: Options,
  session: ReplicaSession,
  excludeFiles: ExcludeFiles,
): Promise<number> {
  const { verifyTrees } = await import("./lib/engine/verify.ts"); // loads node:crypto: only here
  const excluded = await excludeMatcher(options.exclude, excludeFiles.texts);
  const { tree, refuses, links, owners } = session.verifyTree();
  // What the replica cannot hold is left out, as a cycle leaves it out.
  const exclude = refuses === undefined
    ? excluded
    : (path: string, isDir: boolean) =>
      (excluded?.(path, isDir) ?? false) || refuses(path, isDir ? "dir" : "file") !== undefined;
  // A mirror run as root keeps owners where the replica can: so are they compared.
  const result = await verifyTrees(new LocalTree(options.source), tree, exclude, {
    owners: owners && runsAsRoot(),
    links,
  });
  const lines = [
    ...result.differences,
    `source tree digest: ${result.sourceDigest}`,
    `replica tree digest: ${result.replicaDigest}`,
    result.differences.length === 0
      ? "identical"
      : `${result.differences.length} difference${result.differences.length === 1 ? "" : "s"}`,
  ];
  // One line per difference, names written as in the log (escaped).
  Deno.stdout.writeSync(encoder.encode(lines.map((line) => `${printable(line)}\n`).join("")));
  return result.differences.length === 0 ? OK : PARTIAL;
}

async function main(args: string[]): Promise<number> {
  // SIGHUP (logrotate) never ends the program, not even before the log is open.
  const ignoreHangUp = () => {};
  Deno.addSignalListener("SIGHUP", ignoreHangUp);
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
    printError(`${error.message.replace(/\.$/, "")} (see --help).`);
    return USAGE;
  }
  const refused = refusal(options, options.backend);
  if (refused !== undefined) {
    printError(refused);
    return USAGE;
  }
  const excludeFiles = ExcludeFiles.load(options.excludeFrom);
  if (typeof excludeFiles === "string") {
    printError(excludeFiles);
    return USAGE;
  }
  let session: ReplicaSession;
  try {
    session = await options.backend.open(options.replica, options.backendFlags, {
      dryRun: options.dryRun,
      verify: options.verify,
      intervalSeconds: options.intervalSeconds,
      stateFile: options.stateFile,
      ...(options.backupDir === undefined ? {} : { backupDir: options.backupDir }),
      // A dry run or --verify writes nothing: nothing to limit.
      ...(options.bwlimit === undefined || options.dryRun || options.verify
        ? {}
        : { rate: new (await import("./lib/core/rate.ts")).TokenBucket(options.bwlimit) }),
    });
  } catch (error) {
    printError(`${reason(error as Error).replace(/\.$/, "")}.`);
    return USAGE;
  }
  const within = session.backupWithin;
  if (
    within !== undefined &&
    !isExcludedFolder(await excludeMatcher(options.exclude, excludeFiles.texts), within)
  ) {
    await session.close();
    printError(
      `--backup-dir: '${options.backupDir}' is inside the replica, where the mirror would ` +
        `delete it: exclude it (--exclude '/${within}/') or choose a folder outside.`,
    );
    return USAGE;
  }
  try {
    return await run(options, session, excludeFiles, ignoreHangUp);
  } finally {
    await session.close();
  }
}

/** A run on a replica reached: the claim, the log, the cycles; its exit code. */
async function run(
  options: Options,
  session: ReplicaSession,
  excludeFiles: ExcludeFiles,
  ignoreHangUp: () => void,
): Promise<number> {
  if (options.verify) return await verify(options, session, excludeFiles);
  // The state knows the pair by the source's stable path (a symlinked source
  // stays one) and the replica's identity.
  const pair = { source: stablePathOf(options.source), replica: session.id };
  const held = await session.hold?.();
  if (held !== undefined) {
    printError(held);
    return USAGE;
  }
  const claimed = await Claim.claim({ stateFile: options.stateFile, roots: pair }, options.dryRun);
  if (typeof claimed === "string") {
    printError(claimed);
    return USAGE;
  }
  const tap = new ConsoleTap();
  // What --status-file and --metrics-file say (the log's ERROR lines included).
  const status = new RunStatus({
    version: VERSION,
    pid: Deno.pid,
    source: options.source,
    replica: options.replica,
    mode: options.watch ? "watch" : options.once ? "once" : "loop",
  });
  let logFile: LogFile;
  try {
    logFile = await setupLogging(options.logFile, {
      format: options.logFormat,
      console: options.console,
      tap,
      observe: (record) => status.logged(record),
    });
  } catch (error) {
    claimed.release();
    printError(`--log-file: cannot open '${options.logFile}': ${reason(error as Error)}.`);
    return USAGE;
  }
  const incomplete = await claimed.complete();
  if (incomplete !== undefined) {
    claimed.release();
    await closeLogging();
    printError(incomplete);
    return USAGE;
  }
  const state = claimed.state;
  const log = logger();
  // One writer per replica: the backend takes it (a folder's lock, a lock object or file).
  const taken = options.dryRun ? [] : await session.take(state, log);
  if (typeof taken === "string") {
    claimed.release();
    await closeLogging();
    printError(taken);
    return USAGE;
  }

  // This run's id (and process id) is recorded before its first temp file is made.
  let unrecorded: Error | undefined;
  if (!options.dryRun) await state.save().catch((error) => unrecorded = error);
  const stop = new AbortController();
  const onSignal = (name: Deno.Signal) => () => stop.abort(name);
  const listeners: [Deno.Signal, () => void][] = [
    ["SIGINT", onSignal("SIGINT")],
    ["SIGTERM", onSignal("SIGTERM")],
    // SIGHUP: open the log file's path again (logrotate's postrotate), go on.
    ["SIGHUP", () => {
      if (options.logFile === undefined) return; // none: nothing to reopen
      logFile.reopen();
      log.info("Log file {path} reopened (SIGHUP).", { action: "log", path: options.logFile });
    }],
  ];
  for (const [name, listener] of listeners) Deno.addSignalListener(name, listener);
  Deno.removeSignalListener("SIGHUP", ignoreHangUp);
  log.info(
    "Mirror started (version {version}): source {source}, replica {replica}, " +
      (options.logFile === undefined ? "no log file" : "log file {logFile}") + ", {mode}.",
    {
      version: VERSION,
      source: options.source,
      replica: options.replica,
      logFile: options.logFile,
      mode: options.dryRun
        ? "dry run (one cycle)"
        : options.once
        ? "one cycle"
        : `every ${options.intervalSeconds} s${options.watch ? ", watching for changes" : ""}`,
    },
  );
  for (const note of taken) log[note.level](note.message, { ...note.properties });
  if (unrecorded !== undefined) {
    log.warn(
      "Could not record this run in the state file ({reason}); temp files it leaves if it is " +
        "killed will be removed later as ordinary entries.",
      { action: "state", reason: reason(unrecorded) },
    );
  }
  if (state.recheckSince !== undefined && !options.dryRun) {
    log.warn(
      "The last run did not end cleanly (killed, or a crash or power cut): replica files it " +
        "wrote in its last minute are compared by content before they are trusted.",
      { action: "state" },
    );
  }
  if (claimed.older !== undefined) {
    log.warn(
      "The state file {path} has a damaged newest record ({why}); the one before it is used, " +
        "so what the last cycle learnt is lost (files it knew are compared again).",
      { action: "state", path: options.stateFile, why: claimed.older },
    );
  }
  if (claimed.warning !== undefined) {
    log.warn(
      "The state file {path} was set aside: {why}; this run starts afresh (it reads every " +
        "file it compares once).",
      { action: "state", path: options.stateFile, why: claimed.warning },
    );
  }
  // The two trees, as typed (made absolute): every cycle resolves them again.
  const source = new LocalTree(absolutePath(options.source), { where: options.source });
  const replica = session.replica(state, log);
  // Loaded only for --watch, and --bwlimit's bucket only for it: each module costs every start.
  const watchMode = options.watch && session.watchable && replica.path !== undefined
    ? new (await import("./lib/engine/watch.ts")).WatchMode({
      roots: () => ({ source: source.path, replica: replica.path! }),
      stat: (path) => {
        const entry = replica.stat(path); // a watchable replica answers at once
        return entry instanceof Promise ? undefined : entry;
      },
      distrust: (paths) => mirror.distrustReplica(paths),
      isOwnTemp: (path) => state.temps.holds(path),
      onFailure: (root, error) =>
        log.warn(
          "Cannot watch {path} for changes ({reason}); the full cycle every {interval} s " +
            "still mirrors it.",
          { action: "watch", path: root, reason: reason(error), interval: options.intervalSeconds },
        ),
    })
    : undefined;
  // A dry run writes neither file.
  const statusFiles = new StatusFiles(status, {
    statusFile: options.dryRun ? undefined : options.statusFile,
    metricsFile: options.dryRun ? undefined : options.metricsFile,
    log,
    ...(watchMode ? { watch: () => watchMode.activity } : {}),
  });
  stop.signal.addEventListener("abort", () => statusFiles.stopping(), { once: true });
  const mirror = new Mirror(source, replica, {
    log,
    dryRun: options.dryRun,
    exclude: options.exclude,
    excludeFiles: () => excludeFiles.current(log),
    state,
    // One cycle: the state is committed once, at the clean end, not also after the cycle.
    savesAtEnd: options.once,
    onReplicaChanged: async () => await session.relock?.(),
    ...(options.maxDelete === undefined ? {} : { maxDelete: options.maxDelete }),
    ...(options.backupKeep === undefined ? {} : { backupKeep: options.backupKeep }),
    ...(session.backupWithin === undefined ? {} : { backupWithin: session.backupWithin }),
    acceptEmptySource: options.acceptEmptySource,
    progress: () => status.copies(options.console === "quiet" ? undefined : new CopyProgress(tap)),
    ...(watchMode ? { writes: watchMode } : {}),
  });

  let code = OK;
  if (options.dryRun) {
    await mirror.cycle(stop.signal); // changes nothing: exit 0 whatever it found
  } else if (options.once) {
    const result = await statusFiles.cycle("full", async () => {
      const result = await mirror.cycle(stop.signal);
      // The cycle's save and the clean end in one commit (a failure is the cycle's WARNING).
      await mirror.saveState({ clean: true });
      return result;
    }, stop.signal);
    // Stopped by a signal: all good (what was done stays done).
    if (!stop.signal.aborted) {
      code = result.failed > 0 ? PARTIAL : result.leftBehind > 0 ? LEFT_BEHIND : OK;
    }
  } else {
    watchMode?.ensure();
    await watchMode?.ready(); // the source's folders watched before the first cycle lists them
    await runLoop(
      async (signal) => {
        await statusFiles.cycle("full", () => mirror.cycle(signal), signal);
        watchMode?.ensure();
      },
      options.intervalSeconds * 1000,
      stop.signal,
      watchMode
        ? {
          hints: watchMode.hints,
          cycle: async (paths, signal) => {
            await statusFiles.cycle("partial", () => mirror.partialCycle(paths, signal), signal);
            watchMode.ensure(); // the new folders it found
          },
        }
        : undefined,
    );
    watchMode?.close();
  }
  replica.close?.();
  await statusFiles.close();
  // Ended cleanly (also after SIGINT or SIGTERM): the next run trusts what this one wrote.
  if (!options.dryRun && !options.once) await state.endCleanly().catch(() => {});
  if (stop.signal.aborted) log.info("Mirror stopped by {signal}.", { signal: stop.signal.reason });
  for (const [name, listener] of listeners) Deno.removeSignalListener(name, listener);
  claimed.release();
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

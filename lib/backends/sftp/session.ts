/**
 * From the command line to an SSH replica: the key and `known_hosts` found
 * without prompting (`--ssh-key`, `--ssh-known-hosts`, or `~/.ssh` where
 * `--allow-env=HOME` grants it; the agent where `SSH_AUTH_SOCK` is granted),
 * the connection, whether a shell may run commands there (probed once, as
 * rclone does, unless `--ssh-no-exec`), and the run's hold on the replica: a
 * lease lock in `~/.folder-mirror-locks/` on the host (`core/lease_lock.ts`),
 * so that two mirrors never write one replica, nor one inside another's.
 * Every failure is one line naming the flag.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { asError, reason } from "../../core/error.ts";
import { LeaseLock, type LeaseStore } from "../../core/lease_lock.ts";
import type { Rate } from "../../core/rate.ts";
import type { Note, OpenRun, ReplicaSession } from "../../engine/backend.ts";
import type { MirrorLog } from "../../engine/report.ts";
import type { MirrorState } from "../../state/state.ts";
import { connectSsh, type SshLink, type SshOptions, SshRemote } from "./connect.ts";
import { InodeMemory } from "./memory.ts";
import { SftpReplica } from "./replica.ts";
import { shellQuote } from "./upload.ts";
import { UploadPool } from "./upload_pool.ts";
import { claimsSftp, hostPattern, parseSftp, type SftpLocation } from "./url.ts";

/** A replica's lock on a host lasts this long at least unless renewed. */
const LOCK_TTL_MS = 120_000;
/** The folder, in the login folder, of the lock files of the mirrors of a host. */
const LOCKS = ".folder-mirror-locks";
/**
 * Upload workers (each with a connection of its own) for big files: with the
 * main thread's connection, the cipher runs on two cores. Each costs ~90 MiB
 * of memory while it runs (a V8 isolate with ssh2 and its buffers).
 */
const UPLOAD_WORKERS = 1;
/** The key files tried in `~/.ssh`, in ssh's order. */
const KEY_FILES = ["id_ed25519", "id_ecdsa", "id_rsa"];

/** Whether the environment variable `name` may be read without asking. */
function envGranted(name: string): string | undefined {
  return Deno.permissions.querySync({ name: "env", variable: name }).state === "granted"
    ? Deno.env.get(name)
    : undefined;
}

/** A file's text, or undefined when it does not exist. */
function readIfThere(path: string, flag: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`${flag}: cannot read '${path}': ${reason(asError(error))}`);
  }
}

/** The key, agent and `known_hosts` of a run. */
function credentials(flags: Readonly<Record<string, string | true>>) {
  const keyFlag = typeof flags.sshKey === "string" ? flags.sshKey : undefined;
  const knownFlag = typeof flags.sshKnownHosts === "string" ? flags.sshKnownHosts : undefined;
  const home = envGranted("HOME");
  const agent = envGranted("SSH_AUTH_SOCK") || undefined;
  let key: { text: string; file: string } | undefined;
  if (keyFlag !== undefined) {
    const text = readIfThere(keyFlag, "--ssh-key");
    if (text === undefined) throw new Error(`--ssh-key: '${keyFlag}' does not exist`);
    key = { text, file: keyFlag };
  } else if (home !== undefined) {
    for (const name of KEY_FILES) {
      const file = `${home}/.ssh/${name}`;
      const text = readIfThere(file, "--ssh-key (default)");
      if (text !== undefined) {
        key = { text, file };
        break;
      }
    }
  }
  if (key === undefined && agent === undefined) {
    throw new Error(
      home === undefined
        ? "--ssh-key FILE is needed (or --allow-env=HOME to use ~/.ssh/id_ed25519, id_ecdsa or " +
          "id_rsa, or --allow-env=SSH_AUTH_SOCK for the agent)"
        : `--ssh-key: no key in ${home}/.ssh (${KEY_FILES.join(", ")}) and no agent: give ` +
          "--ssh-key FILE",
    );
  }
  let knownFile: string;
  if (knownFlag !== undefined) knownFile = knownFlag;
  else if (home !== undefined) knownFile = `${home}/.ssh/known_hosts`;
  else {
    throw new Error(
      "--ssh-known-hosts FILE is needed (or --allow-env=HOME to read ~/.ssh/known_hosts)",
    );
  }
  const knownText = readIfThere(knownFile, "--ssh-known-hosts") ?? "";
  return { key, agent, knownHosts: { text: knownText, file: knownFile } };
}

/**
 * Whether the host runs commands for us with the tools this program uses:
 * GNU `md5sum -z`, `find -printf`, `xargs -0` (as rclone probes `md5sum`).
 */
async function probeShell(link: SshLink): Promise<string | undefined> {
  // A POSIX shell first: the commands quote paths as it reads them (fish or csh would not).
  const quoted = "a'b\\c";
  const probe = link.exec(
    `printf '%s\\n' ${shellQuote(quoted)}; ` +
      "printf '' | md5sum -z && find / -maxdepth 0 -printf '%i\\n' >/dev/null && " +
      "printf 'x\\0' | xargs -0 true",
  ).then((result) => {
    const out = new TextDecoder().decode(result.stdout);
    if (!out.startsWith(`${quoted}\n`)) return "its login shell does not quote as a POSIX shell";
    return result.code === 0 && out.startsWith(`${quoted}\nd41d8cd98f00b204e9800998ecf8427e`)
      ? "yes"
      : (result.stderr.trim().split("\n")[0] || `exit ${result.code}`);
  }, (error) => reason(asError(error)));
  let id: ReturnType<typeof setTimeout> | undefined;
  const answer = await Promise.race([
    probe,
    new Promise<string>((resolve) => id = setTimeout(() => resolve("no answer in 5 s"), 5000)),
  ]);
  clearTimeout(id);
  return answer === "yes" ? undefined : answer;
}

/** The lock files of a host's mirrors, as a {@link LeaseStore}. */
function hostLeases(remote: SshRemote, folder: string, host: string): LeaseStore {
  const pathOf = (tree: string) => `${folder}/${encodeURIComponent(tree)}`;
  const tempOf = (tree: string) => `${pathOf(tree)}.${crypto.randomUUID()}.writing`;
  const write = async (path: string, body: Uint8Array, flags: "wx" | "w") => {
    const link = await remote.link();
    const handle = await link.call<Buffer>((done) =>
      link.sftp.open(path, flags, { mode: 0o600 }, done)
    );
    try {
      await link.call((done) =>
        link.sftp.write(handle, Buffer.from(body), 0, body.length, 0, done)
      );
    } finally {
      await link.call((done) => link.sftp.close(handle, done));
    }
  };
  const made = (async () => {
    const link = await remote.link();
    await link.call((done) => link.sftp.mkdir(folder, { mode: 0o700 }, done)).catch(() => {});
  })();
  return {
    async create(tree, body) {
      await made;
      const link = await remote.link();
      // Written whole under a temp name, then a plain rename, which OpenSSH refuses where the
      // lock exists: no other mirror ever reads a lock half written.
      const temp = tempOf(tree);
      await write(temp, body, "wx");
      try {
        await link.call((done) => link.sftp.rename(temp, pathOf(tree), done));
        return true;
      } catch (error) {
        await link.call((done) => link.sftp.unlink(temp, done)).catch(() => {});
        const exists = await link.call<unknown>((done) => link.sftp.lstat(pathOf(tree), done))
          .then(() => true, () => false);
        if (exists) return false;
        throw error;
      }
    },
    async write(tree, body) {
      // Whole or not at all: a temp file renamed over the lock.
      const link = await remote.link();
      const temp = tempOf(tree);
      await write(temp, body, "wx");
      await link.call((done) => link.sftp.ext_openssh_rename(temp, pathOf(tree), done));
    },
    async read(tree) {
      const link = await remote.link();
      try {
        const handle = await link.call<Buffer>((done) => link.sftp.open(pathOf(tree), "r", done));
        try {
          const buffer = Buffer.alloc(4096);
          const got = await link.call<number>((done) =>
            link.sftp.read(handle, buffer, 0, buffer.length, 0, done)
          );
          return new Uint8Array(buffer.subarray(0, got));
        } finally {
          await link.call((done) => link.sftp.close(handle, done)).catch(() => {});
        }
      } catch (error) {
        if ((error as { code?: unknown }).code === 2) return undefined;
        throw error;
      }
    },
    async remove(tree) {
      const link = await remote.link();
      await link.call((done) => link.sftp.unlink(pathOf(tree), done)).catch((error) => {
        if ((error as { code?: unknown }).code !== 2) throw error;
      });
    },
    async trees() {
      await made;
      const link = await remote.link();
      const list = await link.call<{ filename: string }[]>((done) =>
        link.sftp.readdir(folder, done)
      );
      return list.flatMap(({ filename }) => {
        if (/\.[0-9a-f-]{36}\.writing$/.test(filename)) return []; // a lock being written
        try {
          const tree = decodeURIComponent(filename);
          return tree.startsWith("/") ? [tree] : [];
        } catch {
          return [];
        }
      });
    },
    describe: (tree) => `'${tree}' on ${host}`,
  };
}

/** Normalise an absolute path (no `.`, `..` or empty parts). */
function normal(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return `/${parts.join("/")}`;
}

/**
 * Reach an SSH replica: check the flags and credentials, connect, probe the shell.
 *
 * @param replica `--replica` as given.
 * @param flags the backend's flags that were given.
 * @param run how the run goes.
 * @returns the run's session.
 * @throws {Error} a one-line message naming the flag at fault.
 */
export async function openSftp(
  replica: string,
  flags: Readonly<Record<string, string | true>>,
  run: OpenRun,
): Promise<ReplicaSession> {
  let location: SftpLocation;
  try {
    location = parseSftp(replica);
  } catch (error) {
    throw new Error(`--replica: ${asError(error).message}`);
  }
  const endpoint = `${
    location.host.includes(":") ? `[${location.host}]` : location.host
  }:${location.port}`;
  if (Deno.permissions.querySync({ name: "net", host: endpoint }).state !== "granted") {
    throw new Error(
      `--replica: network access to ${endpoint} is not granted: run with --allow-net=${endpoint}`,
    );
  }
  const { key, agent, knownHosts } = credentials(flags);
  const sshOptions: SshOptions = {
    location,
    ...(key ? { key } : {}),
    ...(agent ? { agent } : {}),
    knownHosts,
  };
  const connect = async () => {
    try {
      return await connectSsh(sshOptions);
    } catch (error) {
      const message = asError(error).message;
      throw new Error(message.startsWith("--") ? message : `--replica: ${message}`);
    }
  };
  const link = await connect();
  try {
    const noExec = flags.sshNoExec === true;
    const shell = noExec ? "--ssh-no-exec" : await probeShell(link);
    const home = await link.call<string>((done) => link.sftp.realpath(".", done));
    const given = normal(
      location.path.startsWith("/") ? location.path : `${home}/${location.path}`,
    );
    // A root that is a symlink (or under one) is its real path: listings, the lock and the
    // state name the folder itself (`find` does not follow a symlink it starts from).
    const root = await link.call<string>((done) => link.sftp.realpath(given, done))
      .catch(() => given);
    const host = `${location.user}@${hostPattern(location)}`;
    const backupDir = run.backupDir === undefined
      ? undefined
      : await backupFolder(link, run.backupDir, location, home, root);
    return new SftpSession({
      ...(backupDir ? { backupDir } : {}),
      remote: new SshRemote(link, connect),
      sshOptions,
      given: replica,
      host,
      root,
      locks: normal(`${home}/${LOCKS}`),
      shell,
      run,
    });
  } catch (error) {
    link.close();
    const message = reason(asError(error));
    throw new Error(message.startsWith("--") ? message : `--replica: ${message}`);
  }
}

/**
 * `--backup-dir` for an SSH replica: a folder on the same host, given as the
 * replica is (`sftp://USER@HOST[:PORT]/PATH` or `USER@HOST:PATH`), at its real path.
 */
async function backupFolder(
  link: SshLink,
  given: string,
  replica: SftpLocation,
  home: string,
  root: string,
): Promise<{ path: string; where: string }> {
  const wrong = `--backup-dir: '${given}' is not a folder on ${replica.user}@${
    hostPattern(replica)
  } (give it as the replica is: sftp://${replica.user}@${hostPattern(replica)}/PATH)`;
  if (!claimsSftp(given)) throw new Error(wrong);
  let location: SftpLocation;
  try {
    location = parseSftp(given);
  } catch (error) {
    throw new Error(`--backup-dir: ${asError(error).message}`);
  }
  if (
    location.user !== replica.user || location.host !== replica.host ||
    location.port !== replica.port
  ) throw new Error(wrong);
  const spelled = normal(
    location.path.startsWith("/") ? location.path : `${home}/${location.path}`,
  );
  const path = await link.call<string>((done) => link.sftp.realpath(spelled, done))
    .catch(() => spelled);
  if (path === root) throw new Error(`--backup-dir: '${given}' is the replica folder itself`);
  return { path, where: given };
}

/** A run's hold on an SSH replica. */
class SftpSession implements ReplicaSession {
  readonly id: string;
  readonly watchable = false;
  readonly #remote: SshRemote;
  readonly #given: string;
  readonly #host: string;
  readonly #root: string;
  readonly #locks: string;
  /** Why no command runs on the host, or undefined when they do. */
  readonly #shell: string | undefined;
  readonly #run: OpenRun;
  #lock: LeaseLock | undefined;
  readonly #sshOptions: SshOptions;
  readonly backupWithin?: string;
  readonly #backupDir: { path: string; where: string } | undefined;
  /** The upload workers, started with the first big file. */
  #pool: UploadPool | undefined;

  constructor(options: {
    remote: SshRemote;
    sshOptions: SshOptions;
    given: string;
    host: string;
    root: string;
    locks: string;
    shell: string | undefined;
    run: OpenRun;
    backupDir?: { path: string; where: string };
  }) {
    this.#backupDir = options.backupDir;
    const backup = options.backupDir?.path;
    if (backup !== undefined && backup.startsWith(`${options.root}/`)) {
      this.backupWithin = backup.slice(options.root.length + 1);
    }
    this.#remote = options.remote;
    this.#sshOptions = options.sshOptions;
    this.#given = options.given;
    this.#host = options.host;
    this.#root = options.root;
    this.#locks = options.locks;
    this.#shell = options.shell;
    this.#run = options.run;
    this.id = `sftp://${options.host}${options.root}`;
  }

  #replica(extra: {
    memory?: InodeMemory;
    readBack?: boolean;
    tempName?: () => string;
    uploaders?: () => UploadPool;
    rate?: Rate;
    beforeCycle?: () => Promise<void>;
  }) {
    const root = this.#root;
    const hidden = this.#locks === root || this.#locks.startsWith(`${root}/`)
      ? this.#locks
      : undefined;
    return new SftpReplica({
      remote: this.#remote,
      where: this.#given,
      id: this.id,
      root,
      exec: this.#shell === undefined,
      tempName: extra.tempName ?? (() => `.mirror.tmp.verify.${crypto.randomUUID()}`),
      ...(hidden ? { hidden } : {}),
      ...extra,
    });
  }

  verifyTree() {
    const tree = this.#replica({ readBack: true });
    return {
      tree,
      ...(tree.refuses ? { refuses: tree.refuses } : {}),
      // Which names are one file: told by `find` (a shell), not by SFTP.
      links: this.#shell === undefined,
      owners: false,
    };
  }

  async take(state: MirrorState): Promise<readonly Note[] | string> {
    const notes: Note[] = [{
      level: "info",
      message: this.#shell === undefined
        ? "Replica {path}: files are examined and hashed on {host} (find, md5sum)."
        : "Replica {path}: no commands run on {host} ({why}): files are compared by size and " +
          "mtime, and hashed by reading them back.",
      properties: { action: "connect", path: this.#given, host: this.#host, why: this.#shell },
    }];
    if (this.#run.dryRun || this.#run.verify) return notes;
    const ttl = Math.max(LOCK_TTL_MS, 3 * this.#run.intervalSeconds * 1000);
    const lock = new LeaseLock(
      hostLeases(this.#remote, this.#locks, this.#host),
      this.#root,
      state.runId,
      ttl,
    );
    let held: string | undefined;
    try {
      held = await lock.acquire((runId) => state.isEarlierRun(runId));
    } catch (error) {
      return `--replica: '${this.#given}': cannot take the replica's lock (${
        reason(asError(error))
      }).`;
    }
    if (held !== undefined) {
      return `--replica: '${this.#given}' is being written by another mirror (${held}).`;
    }
    this.#lock = lock;
    if (lock.takenOver !== undefined) {
      notes.push({
        level: "warn",
        message: "The lock of replica {path} was taken over ({holder}); it was deleted.",
        properties: { action: "lock", path: this.#given, holder: lock.takenOver },
      });
    }
    return notes;
  }

  replica(state: MirrorState, log: MirrorLog) {
    const memory = new InodeMemory();
    state.remember(memory);
    const lock = this.#lock;
    lock?.keep((error) =>
      log.error("The replica's lock could not be renewed ({reason}).", {
        action: "lock",
        reason: reason(error),
      })
    );
    this.#remote.onReconnect = (why) =>
      log.warn("The connection to {host} was made again ({reason}).", {
        action: "connect",
        host: this.#host,
        reason: why,
      });
    return this.#replica({
      memory,
      tempName: () => state.temps.next(),
      uploaders: () =>
        this.#pool ??= new UploadPool(this.#sshOptions, UPLOAD_WORKERS, this.#run.rate),
      ...(this.#run.rate ? { rate: this.#run.rate } : {}),
      ...(lock ? { beforeCycle: () => lock.renewIfDue() } : {}),
      ...(this.#backupDir ? { backupDir: this.#backupDir } : {}),
    });
  }

  async close(): Promise<void> {
    try {
      // With the host gone, the lock lapses on its own: a stop does not wait to connect.
      if (this.#remote.connected) await this.#lock?.release();
    } finally {
      this.#pool?.close();
      this.#remote.close();
    }
  }
}

/**
 * A throwaway OpenSSH server on 127.0.0.1 for the SFTP tests: its own host
 * key, client key, `sshd_config`, `authorized_keys` and `known_hosts` in a temp
 * folder, `/usr/sbin/sshd -D -e` as a child process, and helpers to hurt it
 * (kill it, drop its connections, freeze it, fill its disk). Needs
 * `openssh-server` (apt) and root; {@link sshdMissing} says why not otherwise.
 * Start-up takes ~0.2 s.
 *
 * The login user is root by default: nothing to create on the machine, and the
 * replica keeps owners as a root remote does. `user` names another account
 * instead (made with `useradd` when missing), for tests of a remote that
 * refuses what root could do.
 *
 * The connection processes of sshd re-title themselves (`sshd: root@notty`),
 * so `pkill -f CONFIG` finds only the listening daemon: they are found instead
 * as its descendants (by `ps`).
 *
 * @example Start, use, stop
 * ```ts ignore
 * const sshd = await startSshd();
 * try {
 *   // connect to sshd.host:sshd.port as sshd.user with the key at sshd.keyPath,
 *   // write below sshd.root
 * } finally {
 *   await sshd.stop();
 * }
 * ```
 *
 * @module
 */
import { createHmac, randomBytes } from "node:crypto";

/** How to start the server; every field is optional. */
export interface SshdOptions {
  /**
   * The login user. Another name than root is made with `useradd -m` when
   * missing, and its password set to `*` (a `!` blocks key logins with
   * `UsePAM no`). It owns {@link Sshd.root}.
   * @default {"root"}
   */
  readonly user?: string;
  /**
   * Mount a tmpfs of this size (e.g. `"2m"`) at {@link Sshd.root}, owned by
   * the user: a small remote disk to fill. Unmounted by `stop()`.
   * @default {undefined} (no tmpfs: the root is a plain folder)
   */
  readonly diskSize?: string;
  /**
   * The SFTP server: `"internal"` (sshd's `internal-sftp`, no exec) or
   * `"server"` (`/usr/lib/openssh/sftp-server`, a process of its own per
   * session). Both offer the same extensions (same code in OpenSSH 9.2).
   * @default {"internal"}
   */
  readonly sftp?: "internal" | "server";
  /** More `sshd_config` lines, appended. @default {[]} */
  readonly config?: readonly string[];
  /** How long to wait for the server to accept logins, in ms. @default {10000} */
  readonly timeoutMs?: number;
}

/** A running server (see the module documentation). */
export interface Sshd {
  /** Always `127.0.0.1`. */
  readonly host: string;
  /** The port it listens on; the same after {@link restart}. */
  readonly port: number;
  /** The login user (`root` unless asked otherwise). */
  readonly user: string;
  /** The client's private key (ed25519, no passphrase, mode 0600). */
  readonly keyPath: string;
  /** The client's public key line, as in `authorized_keys`. */
  readonly publicKey: string;
  /** A `known_hosts` file with the plain line `[127.0.0.1]:PORT ssh-ed25519 AAAA…`. */
  readonly knownHostsPath: string;
  /** The host key as `known_hosts` gives it after the host: `ssh-ed25519 AAAA…` (no comment). */
  readonly hostKeyLine: string;
  /** The host name as `known_hosts` and ssh write it: `[127.0.0.1]:PORT`. */
  readonly hostPattern: string;
  /** The temp folder holding everything; removed by {@link stop}. */
  readonly dir: string;
  /** A folder inside {@link dir} owned by the user, for replicas (a tmpfs with `diskSize`). */
  readonly root: string;
  /** The `sshd_config` path (unique: it names the server in `ps`). */
  readonly configPath: string;
  /** Whether the listening daemon is alive (false after a deadly {@link kill}). */
  readonly running: boolean;
  /**
   * A `known_hosts` line for this server: plain, or hashed as ssh's
   * `HashKnownHosts` writes it (`|1|SALT|HMAC-SHA1(salt, "[127.0.0.1]:PORT")`).
   */
  knownHostsLine(options?: { readonly hashed?: boolean }): string;
  /**
   * Arguments for the `ssh` client (before the command): key, port, user,
   * `BatchMode`, this `known_hosts` only, strict host key checking. E.g.
   * `new Deno.Command("ssh", { args: [...sshd.sshArgs(), "true"] })`.
   */
  sshArgs(): string[];
  /** What sshd printed on stderr so far (`LogLevel ERROR` unless configured). */
  log(): string;
  /** The pids of the daemon's descendants: one or more per open connection. */
  connectionPids(): number[];
  /**
   * Send `signal` to the listening daemon and every connection process, all
   * at once (the descendants are listed first, so none escapes by being
   * orphaned). `SIGKILL` is a crashed server: clients see their connections
   * reset and new ones refused until {@link restart}. `SIGSTOP` freezes it
   * (connections hang; nothing answers) and `SIGCONT` thaws it.
   * @default {"SIGKILL"}
   */
  kill(signal?: Deno.Signal): void;
  /**
   * Send `signal` to the connection processes only: every open connection
   * drops (mid-upload, say) while the daemon goes on accepting new ones.
   * Returns how many processes were signalled.
   * @default {"SIGKILL"}
   */
  dropConnections(signal?: Deno.Signal): number;
  /**
   * Kill everything that is left (SIGKILL) and start sshd again with the same
   * port, keys and folder; resolves once it accepts connections.
   */
  restart(): Promise<void>;
  /** Kill sshd and its descendants, unmount the tmpfs, remove {@link dir}. Idempotent. */
  stop(): Promise<void>;
  /** {@link stop}, for `await using sshd = await startSshd()`. */
  [Symbol.asyncDispose](): Promise<void>;
}

const SSHD = "/usr/sbin/sshd";
const SFTP_SERVER = "/usr/lib/openssh/sftp-server";
const decoder = new TextDecoder();

function onPath(program: string): boolean {
  // Fixed folders: reading PATH would need --allow-env.
  for (
    const dir of ["/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin"]
  ) {
    try {
      if (Deno.statSync(`${dir}/${program}`).isFile) return true;
    } catch {
      // not in this folder
    }
  }
  return false;
}

/**
 * Why the tests cannot run a throwaway sshd here, or undefined when they can:
 * not Linux, `/usr/sbin/sshd` (apt `openssh-server`) missing, `ssh-keygen` or
 * `ssh` (apt `openssh-client`) not on the PATH, or not root. Needs read access
 * to `/usr/sbin` and the PATH, and write access to the temp folder.
 *
 * @example Skip a test where sshd cannot run
 * ```ts ignore
 * Deno.test({ name: "sftp mirror", ignore: sshdMissing() !== undefined, fn: async () => {} });
 * ```
 */
export function sshdMissing(): string | undefined {
  if (Deno.build.os !== "linux") return "the throwaway sshd runs on Linux only";
  try {
    Deno.statSync(SSHD);
  } catch {
    return `needs ${SSHD}: apt-get install --no-install-recommends openssh-server`;
  }
  for (const program of ["ssh-keygen", "ssh"]) {
    if (!onPath(program)) {
      return `needs ${program}: apt-get install --no-install-recommends openssh-client`;
    }
  }
  // A file made here is owned by uid 0 when this is root (Deno.uid() needs --allow-sys).
  const probe = Deno.makeTempFileSync();
  try {
    if (Deno.statSync(probe).uid !== 0) {
      return "the throwaway sshd needs root (it binds as root and reads any home)";
    }
  } finally {
    Deno.removeSync(probe);
  }
  return undefined;
}

async function run(program: string, ...args: string[]): Promise<string> {
  const output = await new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = decoder.decode(output.stdout);
  if (!output.success) {
    throw new Error(
      `${program} ${args.join(" ")} exited ${output.code}: ${decoder.decode(output.stderr)}${text}`,
    );
  }
  return text;
}

async function succeeds(program: string, ...args: string[]): Promise<boolean> {
  try {
    const command = new Deno.Command(program, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    });
    return (await command.output()).success;
  } catch {
    return false;
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Every process's children, from `ps` (reading `/proc` would need --allow-all). */
function parents(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  const output = new Deno.Command("ps", {
    args: ["-e", "-o", "pid=", "-o", "ppid="],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  for (const line of decoder.decode(output.stdout).split("\n")) {
    const [pid, ppid] = line.trim().split(/\s+/).map(Number);
    if (!pid || ppid === undefined) continue;
    const list = children.get(ppid) ?? [];
    list.push(pid);
    children.set(ppid, list);
  }
  return children;
}

function descendants(pid: number): number[] {
  const children = parents();
  const found: number[] = [];
  const queue = [pid];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    for (const child of children.get(next) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

function signal(pid: number, sig: Deno.Signal): boolean {
  try {
    Deno.kill(pid, sig);
    return true;
  } catch {
    return false; // gone already
  }
}

/** The `known_hosts` host field hashed as ssh writes it: `|1|salt|hmac`. */
function hashHost(host: string, salt: Uint8Array = randomBytes(20)): string {
  const hmac = createHmac("sha1", salt).update(host).digest("base64");
  return `|1|${btoa(String.fromCharCode(...salt))}|${hmac}`;
}

async function ensureUser(user: string): Promise<{ uid: number; gid: number }> {
  if (user !== "root" && !(await succeeds("id", "-u", user))) {
    await run("useradd", "--create-home", "--shell", "/bin/sh", user);
  }
  // useradd leaves the password "!" (locked): with UsePAM no that blocks key
  // logins too. "*" is "no password" without the lock.
  if (user !== "root") await run("usermod", "-p", "*", user);
  return {
    uid: Number((await run("id", "-u", user)).trim()),
    gid: Number((await run("id", "-g", user)).trim()),
  };
}

/**
 * Make an ed25519 key pair without a passphrase: `path` and `path.pub`.
 *
 * @param path where the private key goes.
 * @param comment the key's comment.
 * @returns the public key as `known_hosts` and `authorized_keys` give it: `ssh-ed25519 AAAA…`.
 */
export async function makeKey(path: string, comment = "mirror-test"): Promise<string> {
  await run("ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-C", comment, "-f", path);
  return (await Deno.readTextFile(`${path}.pub`)).trim().split(" ").slice(0, 2).join(" ");
}

/** Whether something on 127.0.0.1:`port` answers with an SSH banner. */
async function banner(port: number): Promise<boolean> {
  let conn: Deno.Conn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    // Our own banner first: a client that says nothing makes sshd log an error.
    await conn.write(new TextEncoder().encode("SSH-2.0-mirror-sshd-probe\r\n"));
    const buffer = new Uint8Array(64);
    const timer = setTimeout(() => conn?.close(), 1000);
    try {
      const n = await conn.read(buffer);
      return n !== null && decoder.decode(buffer.subarray(0, n)).startsWith("SSH-");
    } finally {
      clearTimeout(timer);
    }
  } catch {
    return false;
  } finally {
    try {
      conn?.close();
    } catch {
      // closed by the timer
    }
  }
}

/**
 * Start a throwaway sshd (see the module documentation). Needs `--allow-run`,
 * `--allow-read`, `--allow-write` (the temp folder, `/run/sshd`) and
 * `--allow-net=127.0.0.1`. Throws, with sshd's stderr, when it does not accept
 * a login within `timeoutMs`; nothing is left behind then.
 *
 * @example A server whose disk holds 2 MiB, logged into as a plain user
 * ```ts ignore
 * await using sshd = await startSshd({ user: "mirrortest", diskSize: "2m" });
 * sshd.dropConnections(); // every open connection drops; new ones work
 * sshd.kill(); // the server is down
 * await sshd.restart(); // and up again on the same port
 * ```
 */
export async function startSshd(options: SshdOptions = {}): Promise<Sshd> {
  const user = options.user ?? "root";
  const timeoutMs = options.timeoutMs ?? 10_000;
  const dir = await Deno.makeTempDir({ prefix: "mirror-sshd-" });
  const hostKey = `${dir}/host_key`, keyPath = `${dir}/client_key`;
  const configPath = `${dir}/sshd_config`, knownHostsPath = `${dir}/known_hosts`;
  const authorizedKeys = `${dir}/authorized_keys`, root = `${dir}/root`;
  let mounted = false;
  let daemon: Deno.ChildProcess | undefined;
  let alive = false;
  let stderr = "";
  let reading: Promise<void> = Promise.resolve();
  let stopped = false;

  const pids = () => daemon && alive ? descendants(daemon.pid) : [];
  const killAll = (sig: Deno.Signal) => {
    if (!daemon || !alive) return;
    const all = [...pids(), daemon.pid];
    for (const pid of all) signal(pid, sig);
  };
  const spawn = () => {
    const child = new Deno.Command(SSHD, {
      args: ["-D", "-e", "-f", configPath],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    daemon = child;
    alive = true;
    child.status.then(() => {
      if (daemon === child) alive = false;
    });
    reading = (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        stderr += chunk;
      }
    })();
  };
  /** Wait for the daemon's exit and the end of its stderr (every holder gone). */
  const reap = async () => {
    if (!daemon) return;
    await daemon.status;
    // A connection process keeps the pipe open after the daemon is gone
    // only if it escaped the kill: don't hang on it.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      reading,
      new Promise((resolve) => timer = setTimeout(resolve, 2000)),
    ]);
    clearTimeout(timer);
  };
  const waitReady = async (login: boolean) => {
    const deadline = Date.now() + timeoutMs;
    let last = "no SSH banner";
    while (Date.now() < deadline) {
      if (!alive) {
        await reap();
        throw new Error(`sshd exited at start (${configPath}):\n${stderr}`);
      }
      if (await banner(port)) {
        if (!login) return;
        const output = await new Deno.Command("ssh", {
          args: [...sshArgs(), "-o", "ConnectTimeout=5", "true"],
          stdin: "null",
          stdout: "null",
          stderr: "piped",
        }).output();
        if (output.success) return;
        last = `ssh login failed: ${decoder.decode(output.stderr).trim()}`;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    killAll("SIGKILL");
    await reap();
    throw new Error(
      `sshd on 127.0.0.1:${port} not ready after ${timeoutMs} ms (${last}); sshd said:\n${stderr}`,
    );
  };
  const sshArgs = () => [
    "-i",
    keyPath,
    "-p",
    String(port),
    "-l",
    user,
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    `UserKnownHostsFile=${knownHostsPath}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "LogLevel=ERROR",
    "127.0.0.1",
  ];
  const cleanUp = async () => {
    if (mounted && !(await succeeds("umount", root))) await succeeds("umount", "--lazy", root);
    mounted = false;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const onUnload = () => {
    killAll("SIGKILL");
    if (mounted) new Deno.Command("umount", { args: ["--lazy", root] }).outputSync();
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // best effort at exit
    }
  };

  let port = 0;
  let hostKeyLine = "";
  let publicKey = "";
  try {
    const { uid, gid } = await ensureUser(user);
    await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 });
    hostKeyLine = await makeKey(hostKey, "mirror-sshd-host");
    await makeKey(keyPath, "mirror-sshd-client");
    publicKey = (await Deno.readTextFile(`${keyPath}.pub`)).trim();
    await Deno.writeTextFile(authorizedKeys, `${publicKey}\n`, { mode: 0o644 });
    await Deno.mkdir(root);
    if (options.diskSize !== undefined) {
      const size = `size=${options.diskSize},mode=0755,uid=${uid},gid=${gid}`;
      await run("mount", "-t", "tmpfs", "-o", size, "tmpfs", root);
      mounted = true;
    }
    await Deno.chown(root, uid, gid);
    // A non-root user's sshd reads authorized_keys as that user: let it in.
    await Deno.chmod(dir, 0o755);

    const sftp = options.sftp === "server" ? SFTP_SERVER : "internal-sftp";
    const config = (candidate: number, penalties: boolean) =>
      [
        `Port ${candidate}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${hostKey}`,
        `AuthorizedKeysFile ${authorizedKeys}`,
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "PermitRootLogin prohibit-password",
        `AllowUsers ${user}`,
        `PidFile ${dir}/sshd.pid`,
        `Subsystem sftp ${sftp}`,
        "LogLevel ERROR",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        // Tests open many connections and channels at once; the defaults
        // (10:30:100, 10) drop some at random.
        "MaxStartups 100",
        "MaxSessions 100",
        // OpenSSH >= 9.8 penalises a source whose sessions crash, which the
        // fault tests do on purpose; 9.2 does not know the option.
        ...(penalties ? ["PerSourcePenalties no"] : []),
        ...(options.config ?? []),
        "",
      ].join("\n");
    const penalties = await (async () => {
      await Deno.writeTextFile(configPath, config(22, true));
      return await succeeds(SSHD, "-t", "-f", configPath);
    })();
    await Deno.writeTextFile(configPath, config(22, penalties));
    await run(SSHD, "-t", "-f", configPath); // a clear error for a bad extra line

    // The port is free when picked, not necessarily when sshd binds it: try a few.
    for (let attempt = 1;; attempt++) {
      port = freePort();
      await Deno.writeTextFile(configPath, config(port, penalties));
      await Deno.writeTextFile(knownHostsPath, `[127.0.0.1]:${port} ${hostKeyLine}\n`);
      spawn();
      try {
        await waitReady(true);
        break;
      } catch (error) {
        if (attempt >= 3 || !/Address already in use/.test(stderr)) throw error;
        stderr = "";
      }
    }
  } catch (error) {
    killAll("SIGKILL");
    await reap();
    await cleanUp();
    throw error;
  }
  globalThis.addEventListener("unload", onUnload);

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    globalThis.removeEventListener("unload", onUnload);
    killAll("SIGKILL");
    await reap();
    await cleanUp();
  };
  const hostPattern = `[127.0.0.1]:${port}`;
  return {
    host: "127.0.0.1",
    port,
    user,
    keyPath,
    publicKey,
    knownHostsPath,
    hostKeyLine,
    hostPattern,
    dir,
    root,
    configPath,
    get running() {
      return alive;
    },
    knownHostsLine: (options = {}) =>
      `${options.hashed ? hashHost(hostPattern) : hostPattern} ${hostKeyLine}`,
    sshArgs,
    log: () => stderr,
    connectionPids: pids,
    kill: (sig = "SIGKILL") => killAll(sig),
    dropConnections: (sig = "SIGKILL") => {
      const found = pids();
      return found.filter((pid) => signal(pid, sig)).length;
    },
    restart: async () => {
      if (stopped) throw new Error("sshd: restart after stop");
      killAll("SIGKILL");
      await reap();
      spawn();
      await waitReady(false);
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

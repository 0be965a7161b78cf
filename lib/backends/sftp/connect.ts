/**
 * An SSH connection to a replica's host with the npm package `ssh2`: the
 * user's key (or agent), the host key checked against `known_hosts` as `ssh`
 * checks it (hashed entries, `[host]:port`, wildcards, `@revoked`), never a
 * prompt; TCP no-delay (without it each request waits ~40 ms for Nagle);
 * keep-alives, so a server that stops answering ends the connection instead
 * of hanging it. {@link SshLink} is one connection with its SFTP session and
 * the remote commands (`exec`) it runs.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, createHmac } from "node:crypto";
// @ts-types="npm:@types/ssh2@1.15.5"
import { Client, type ClientChannel, type SFTPWrapper } from "npm:ssh2@1.17.0";
import pLimit from "npm:p-limit@^7.3.0";
import { asError, reason } from "../../core/error.ts";
import { hostPattern, type SftpLocation } from "./url.ts";

/** One key that `known_hosts` gives the host. */
interface KnownKey {
  /** The key type (`ssh-ed25519`). */
  readonly type: string;
  /** The key, base64. */
  readonly blob: string;
  /** `@revoked`: never accepted. */
  readonly revoked: boolean;
  /** Where: `FILE:LINE`. */
  readonly at: string;
}

/** Whether `name` matches one `known_hosts` host pattern (`*`, `?` wildcards). */
function patternMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith("|1|")) {
    const [, , salt, hash] = pattern.split("|");
    if (salt === undefined || hash === undefined) return false;
    return createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64") === hash;
  }
  const regex = new RegExp(
    `^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`,
    "i",
  );
  return regex.test(name);
}

/**
 * The keys `known_hosts` text gives the host `name` (`host` or `[host]:port`).
 *
 * @param text the file's text.
 * @param file its path, for messages.
 * @param name the host as `known_hosts` writes it.
 * @returns its keys, in the file's order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { knownKeys } from "./connect.ts";
 * const text = "[h]:2222,other ssh-ed25519 AAAA\n# a comment\n*.lan ssh-rsa BBBB x@y\n";
 * assert.deepEqual(knownKeys(text, "kh", "[h]:2222").map((k) => k.blob), ["AAAA"]);
 * assert.deepEqual(knownKeys(text, "kh", "box.lan").map((k) => k.type), ["ssh-rsa"]);
 * assert.deepEqual(knownKeys(text, "kh", "h"), []);
 * ```
 */
export function knownKeys(text: string, file: string, name: string): KnownKey[] {
  const found: KnownKey[] = [];
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const fields = line.split(/\s+/);
    let revoked = false;
    if (fields[0]!.startsWith("@")) {
      const marker = fields.shift();
      if (marker === "@cert-authority") return; // certificates are not taken
      revoked = marker === "@revoked";
    }
    const [hosts, type, blob] = fields;
    if (hosts === undefined || type === undefined || blob === undefined) return;
    let matched = false;
    for (const pattern of hosts.split(",")) {
      if (pattern.startsWith("!")) {
        if (patternMatches(pattern.slice(1), name)) return;
      } else if (patternMatches(pattern, name)) matched = true;
    }
    if (matched) found.push({ type, blob, revoked, at: `${file}:${index + 1}` });
  });
  return found;
}

/** The type and SHA256 fingerprint of a key blob, as `ssh` prints them. */
function fingerprint(key: Buffer): string {
  const length = key.readUInt32BE(0);
  const type = key.subarray(4, 4 + length).toString();
  const digest = createHash("sha256").update(key).digest("base64").replace(/=+$/, "");
  return `${type} SHA256:${digest}`;
}

/** The host key algorithms to ask for, given the key types `known_hosts` has (as ssh orders them). */
function hostKeyAlgorithms(types: readonly string[]): string[] | undefined {
  const algorithms = types.flatMap((type) =>
    type === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [type]
  );
  return algorithms.length > 0 ? [...new Set(algorithms)] : undefined;
}

/** SFTP sessions per connection: the host serves each with a process of its own. */
const SESSIONS = 2;
/** The ciphers asked for, fastest under Deno first. */
const CIPHERS = [
  "aes128-ctr",
  "aes256-ctr",
  "aes128-gcm@openssh.com",
  "aes256-gcm@openssh.com",
  "chacha20-poly1305@openssh.com",
];
/** The MACs asked for (a GCM or ChaCha20 cipher needs none). */
const MACS = ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512-etm@openssh.com"];

/** How to reach the host. */
export interface SshOptions {
  /** Where. */
  readonly location: SftpLocation;
  /** The private key (OpenSSH or PEM), and the file it came from. */
  readonly key?: { readonly text: string; readonly file: string };
  /** The agent's socket (`SSH_AUTH_SOCK`). */
  readonly agent?: string;
  /** The `known_hosts` text, and its path. */
  readonly knownHosts: { readonly text: string; readonly file: string };
  /**
   * How long a connection may take, and how long a silent server is waited
   * for (keep-alives), in ms.
   *
   * @default {15000}
   */
  readonly timeoutMs?: number;
}

/** What a remote command gave. */
export interface ExecResult {
  /** Its exit code (null: killed by a signal, or no code sent). */
  readonly code: number | null;
  /** What it wrote on its standard output. */
  readonly stdout: Uint8Array;
  /** What it wrote on its standard error. */
  readonly stderr: string;
}

/** Turn a callback call into a promise. */
export function call<T = void>(run: (done: (error?: Error | null, value?: T) => void) => void) {
  return new Promise<T>((resolve, reject) =>
    run((error, value) => error ? reject(error) : resolve(value as T))
  );
}

/** One SSH connection and its SFTP session; see the module documentation. */
export class SshLink {
  readonly client: Client;
  readonly sftp: SFTPWrapper;
  /** Why the connection ended, once it did. */
  ended: string | undefined;

  /** The requests waiting for an answer: failed when the connection ends. */
  readonly #waiting = new Set<(error: Error) => void>();
  readonly #execs = pLimit(4);
  /** Every SFTP session (the first is {@link sftp}). */
  readonly #sessions: SFTPWrapper[];
  #next = 0;

  constructor(client: Client, sessions: readonly SFTPWrapper[]) {
    this.client = client;
    this.sftp = sessions[0]!;
    this.#sessions = [...sessions];
    const end = (why: string) => {
      this.ended ??= why;
      // ssh2 never answers a request of a connection that ended: fail them all.
      const failure = new Error(`the connection to the replica's host was lost (${this.ended})`);
      for (const fail of [...this.#waiting]) fail(failure);
      this.#waiting.clear();
    };
    client.on("close", () => end("the connection was closed"));
    client.on("end", () => end("the server closed the connection"));
    client.on("error", (error) => end(`the connection failed (${reason(error)})`));
    for (const sftp of sessions) sftp.on("close", () => end("the SFTP session was closed"));
  }

  /**
   * One of the SFTP sessions, in turn: each is served by a process of its
   * own on the host, so files written side by side use them all.
   */
  session(): SFTPWrapper {
    return this.#sessions[this.#next++ % this.#sessions.length]!;
  }

  /**
   * A request on this connection, as a promise: failed at once when the
   * connection has ended, or when it ends before the answer.
   *
   * @param run the request, given the callback ssh2 calls.
   * @returns its answer.
   */
  call<T = void>(run: (done: (error?: Error | null, value?: T) => void) => void): Promise<T> {
    if (this.ended !== undefined) {
      return Promise.reject(
        new Error(`the connection to the replica's host was lost (${this.ended})`),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const fail = (error: Error) => reject(error);
      this.#waiting.add(fail);
      run((error, value) => {
        this.#waiting.delete(fail);
        if (error) reject(error);
        else resolve(value as T);
      });
    });
  }

  /**
   * Run `command` on the host (through the user's shell) and collect what it writes.
   *
   * @param command the command line.
   * @param stdin what to give it on its standard input (then end of input).
   * @returns its exit code and output.
   */
  exec(command: string, stdin?: Uint8Array): Promise<ExecResult> {
    // A few channels at once: OpenSSH allows 10 sessions a connection (MaxSessions), two
    // of them SFTP's.
    return this.#execs(() => this.#exec(command, stdin));
  }

  #exec(command: string, stdin?: Uint8Array): Promise<ExecResult> {
    return this.call<ExecResult>((finish) => {
      const resolve = (result: ExecResult) => finish(null, result);
      const reject = (error: Error) => finish(error);
      this.client.exec(command, (error: Error | undefined, channel: ClientChannel) => {
        if (error) return reject(error);
        const out: Buffer[] = [], err: Buffer[] = [];
        let code: number | null = null;
        channel.on("data", (chunk: Buffer) => out.push(chunk));
        channel.stderr.on("data", (chunk: Buffer) => err.push(chunk));
        channel.on("exit", (exitCode: number | null) => code = exitCode);
        channel.on("close", () =>
          resolve({
            code,
            stdout: new Uint8Array(Buffer.concat(out)),
            stderr: Buffer.concat(err).toString(),
          }));
        channel.on("error", reject);
        channel.end(stdin === undefined ? undefined : Buffer.from(stdin));
      });
    });
  }

  /** Close the connection. */
  close(): void {
    this.ended ??= "closed";
    this.client.end();
  }
}

/**
 * Connect, check the host key, log in and open the SFTP session.
 *
 * @param options how; see {@link SshOptions}.
 * @returns the connection.
 * @throws {Error} a one-line reason (an unknown or changed host key says how to accept it).
 */
export async function connectSsh(options: SshOptions): Promise<SshLink> {
  const { location, knownHosts } = options;
  const name = hostPattern(location);
  const known = knownKeys(knownHosts.text, knownHosts.file, name);
  const accepted = known.filter((key) => !key.revoked);
  let refused: string | undefined;
  const client = new Client();
  const timeoutMs = options.timeoutMs ?? 15_000;
  const algorithms = hostKeyAlgorithms(accepted.map((key) => key.type));
  try {
    await new Promise<void>((resolve, reject) => {
      client.on("ready", resolve);
      client.on("error", reject);
      client.on("close", () => reject(new Error("the connection was closed")));
      client.connect({
        host: location.host,
        port: location.port,
        username: location.user,
        ...(options.key ? { privateKey: options.key.text } : {}),
        ...(options.agent ? { agent: options.agent } : {}),
        readyTimeout: timeoutMs,
        keepaliveInterval: Math.ceil(timeoutMs / 3),
        keepaliveCountMax: 3,
        algorithms: {
          ...(algorithms ? { serverHostKey: algorithms as never } : {}),
          // CTR with an encrypt-then-MAC SHA-256 first: Deno's AES-GCM runs at
          // ~170 MiB/s here, AES-CTR at ~400 and HMAC-SHA-256 at ~1,300 (both
          // in OpenSSH's defaults).
          cipher: CIPHERS as never,
          hmac: MACS as never,
        },
        hostVerifier: (key: Buffer) => {
          const blob = key.toString("base64");
          const print = fingerprint(key);
          const revoked = known.find((entry) => entry.revoked && entry.blob === blob);
          if (revoked) {
            refused = `the host key of ${name} (${print}) is revoked (${revoked.at})`;
          } else if (accepted.some((entry) => entry.blob === blob)) {
            return true;
          } else if (accepted.length > 0) {
            refused = `the host key of ${name} has CHANGED (${print}; ${
              accepted.map((entry) => entry.at).join(", ")
            } has another): someone may be in the middle, or the host was reinstalled; ` +
              `if the new key is right, remove the old one (ssh-keygen -f '${knownHosts.file}' ` +
              `-R '${name}') and add the new one`;
          } else {
            refused = `the host key of ${name} (${print}) is not in '${knownHosts.file}': ` +
              `check its fingerprint, then add it with: ssh-keyscan ${
                location.port === 22 ? "" : `-p ${location.port} `
              }${location.host} >> '${knownHosts.file}'`;
          }
          return false;
        },
      });
      // Right after connect(): the socket exists, and every request is one packet.
      client.setNoDelay(true);
      coalesceWrites((client as unknown as { _sock: Writable })._sock);
    });
  } catch (error) {
    client.end();
    if (refused !== undefined) throw new Error(refused);
    throw new Error(connectFailure(asError(error), options));
  }
  try {
    const sessions = await Promise.all(
      Array.from({ length: SESSIONS }, () => call<SFTPWrapper>((done) => client.sftp(done))),
    );
    return new SshLink(client, sessions);
  } catch (error) {
    client.end();
    throw new Error(`${location.user}@${name} gave no SFTP session (${reason(asError(error))})`);
  }
}

/** What {@link coalesceWrites} needs of a socket. */
interface Writable {
  write(data: Uint8Array): boolean;
  end(...args: unknown[]): unknown;
}

/**
 * Make the packets ssh2 writes in one turn of the event loop one write to
 * the socket: a write costs ~45 µs in Deno's node layer, and each request is
 * a packet of its own (10,000 requests for 2,000 small files).
 */
function coalesceWrites(socket: Writable): void {
  const write = socket.write.bind(socket), end = socket.end.bind(socket);
  let queued: Uint8Array[] = [];
  const flush = () => {
    const packets = queued;
    queued = [];
    if (packets.length > 0) write(packets.length === 1 ? packets[0]! : Buffer.concat(packets));
  };
  socket.write = (data) => {
    if (data.length >= 4096) {
      // A data packet: as it is (copying it would cost more than the write).
      flush();
      return write(data);
    }
    queued.push(data);
    if (queued.length === 1) queueMicrotask(flush);
    return true;
  };
  socket.end = (...args) => {
    flush();
    return end(...args);
  };
}

/** A failed connection in one line. */
function connectFailure(error: Error, options: SshOptions): string {
  const { location } = options;
  const at = `${location.host}:${location.port}`;
  const code = (error as { code?: string }).code;
  if (/authentication methods failed/i.test(error.message)) {
    const tried = [
      ...(options.key ? [`the key '${options.key.file}'`] : []),
      ...(options.agent ? ["the agent's keys"] : []),
    ].join(" and ");
    return `${location.user}@${hostPattern(location)} refused ${tried || "the login"}`;
  }
  if (/encrypted/i.test(error.message) && /passphrase/i.test(error.message)) {
    return `--ssh-key: '${options.key?.file}' is protected by a passphrase: add it to ssh-agent ` +
      "and grant SSH_AUTH_SOCK (--allow-env=SSH_AUTH_SOCK and read and write access to the socket)";
  }
  if (/Cannot parse privateKey|Unsupported key format/i.test(error.message)) {
    return `--ssh-key: '${options.key?.file}' is not a private key ssh2 can read (${error.message})`;
  }
  const unix = /Requires net access to "unix:([^"]*)"/.exec(error.message);
  if (unix !== null) {
    return `the agent's socket is a network permission of its own: add unix:${unix[1]} to ` +
      "--allow-net (or give --ssh-key FILE)";
  }
  if (code === "ECONNREFUSED" || error instanceof Deno.errors.ConnectionRefused) {
    return `cannot reach ${at} (connection refused)`;
  }
  if (/Timed out/i.test(error.message)) return `cannot reach ${at} (no answer)`;
  return `cannot reach ${at} (${reason(error)})`;
}

/** How long a host that could not be reached again is taken as down. */
const DOWN_MS = 5000;

/**
 * The connection a run uses, made again when it ends (a dropped connection,
 * a restarted server): a few tries with a growing pause, then the failure.
 */
export class SshRemote {
  readonly #connect: () => Promise<SshLink>;
  #link: SshLink | undefined;
  #connecting: Promise<SshLink> | undefined;
  /** Told when a connection had to be made again. */
  onReconnect: ((why: string) => void) | undefined;

  /**
   * @param first the connection made when the run started.
   * @param connect how to make another.
   */
  constructor(first: SshLink, connect: () => Promise<SshLink>) {
    this.#link = first;
    this.#connect = connect;
  }

  /** The last failure to connect again, and until when it is the answer (epoch ms). */
  #down: { readonly error: Error; readonly until: number } | undefined;

  /** Whether a connection is up now (nothing is tried). */
  get connected(): boolean {
    return this.#link !== undefined && this.#link.ended === undefined;
  }

  /**
   * The connection, made again if it ended. After tries that all failed,
   * the same failure is the answer for a few seconds: the requests of a
   * cycle fail at once instead of each trying again.
   */
  link(): Promise<SshLink> {
    const link = this.#link;
    if (link !== undefined && link.ended === undefined) return Promise.resolve(link);
    if (this.#down !== undefined && Date.now() < this.#down.until) {
      return Promise.reject(this.#down.error);
    }
    return this.#connecting ??= this.#reconnect(link?.ended ?? "not connected").finally(() =>
      this.#connecting = undefined
    );
  }

  async #reconnect(why: string): Promise<SshLink> {
    this.#link?.close();
    this.#link = undefined;
    let failure: Error | undefined;
    for (const pause of [0, 500, 2000]) {
      if (pause > 0) await new Promise((resolve) => setTimeout(resolve, pause));
      try {
        this.#link = await this.#connect();
        this.#down = undefined;
        this.onReconnect?.(why);
        return this.#link;
      } catch (error) {
        failure = asError(error);
      }
    }
    this.#down = { error: failure!, until: Date.now() + DOWN_MS };
    throw failure!;
  }

  /** Close the connection. */
  close(): void {
    this.#link?.close();
    this.#link = undefined;
  }
}

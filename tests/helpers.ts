/**
 * Shared test helpers: spawn the real program, make temp folders, compare trees.
 *
 * @module
 */
import { createHash } from "node:crypto";
import assert from "node:assert/strict";
import { TEMP_PREFIX } from "../lib/core/temp_names.ts";

export const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** What a finished run of the program printed and returned. */
export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const decoder = new TextDecoder();

/**
 * The exact command the tests run: only read and write permissions, no prompt.
 * `wrapper` (a program and its arguments) runs it, e.g. `setpriv ...`.
 */
export function mirrorCommand(
  args: readonly string[],
  cwd: string,
  wrapper: readonly string[] = [],
  permissions: readonly string[] = [],
): Deno.Command {
  const command = [
    ...wrapper,
    Deno.execPath(),
    "run",
    "--allow-read",
    "--allow-write",
    ...permissions,
    "--no-prompt",
    MAIN,
    ...args,
  ];
  return new Deno.Command(command[0]!, {
    args: command.slice(1),
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/**
 * The program's arguments (after the Deno executable) for a replica in a
 * bucket at `endpoint`, as the README gives them: read and write access, and
 * network access to the endpoint only.
 */
export function s3ProgramArgs(endpoint: string, ...args: string[]): string[] {
  return ["run", "--allow-read", "--allow-write", `--allow-net=${new URL(endpoint).host}`]
    .concat(["--no-prompt", MAIN, "--s3-endpoint", endpoint, ...args]);
}

/**
 * The program's arguments (after the Deno executable) for a replica on the
 * throwaway sshd of `tests/sshd.ts` at `path` below its root, as the README
 * gives them: read and write access, network access to that port only, the
 * key and `known_hosts` by flag.
 */
export function sftpProgramArgs(
  sshd: {
    readonly port: number;
    readonly user: string;
    readonly root: string;
    readonly keyPath: string;
    readonly knownHostsPath: string;
  },
  path: string,
  ...args: string[]
): string[] {
  return [
    "run",
    "--allow-read",
    "--allow-write",
    `--allow-net=127.0.0.1:${sshd.port}`,
    "--no-prompt",
    MAIN,
    "--replica",
    `sftp://${sshd.user}@127.0.0.1:${sshd.port}${sshd.root}/${path}`,
    ...(args.includes("--ssh-key") ? [] : ["--ssh-key", sshd.keyPath]),
    ...(args.includes("--ssh-known-hosts") ? [] : ["--ssh-known-hosts", sshd.knownHostsPath]),
    ...args,
  ];
}

/** Run the program to completion in `cwd` (`permissions`: more than the README's two). */
export async function runMirror(
  args: readonly string[],
  cwd: string,
  wrapper: readonly string[] = [],
  permissions: readonly string[] = [],
): Promise<RunResult> {
  const output = await mirrorCommand(args, cwd, wrapper, permissions).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** The tests' usual pair: `work/src` -> `work/rep`, log in `work/log.txt`. */
export const PAIR: readonly string[] = [
  "--source",
  "src",
  "--replica",
  "rep",
  "--log-file",
  "log.txt",
];

/** `--once` on {@link PAIR}, plus `extra` flags. */
export function runOnce(work: string, ...extra: string[]): Promise<RunResult> {
  return runOnceUnder([], work, ...extra);
}

/** {@link runOnce}, run by `wrapper` (a program and its arguments, e.g. `setpriv ...`). */
export function runOnceUnder(
  wrapper: readonly string[] | undefined,
  work: string,
  ...extra: string[]
): Promise<RunResult> {
  return runMirror([...PAIR, "--once", ...extra], work, wrapper ?? []);
}

/** Whether the tests run as root (a file they make is owned by uid 0). */
export const IS_ROOT: boolean = (() => {
  const file = Deno.makeTempFileSync();
  try {
    return Deno.statSync(file).uid === 0;
  } finally {
    Deno.removeSync(file);
  }
})();

/** Compute `probe()` once, when first asked. */
function once<T>(probe: () => T): () => T {
  let done = false, value: T;
  return () => {
    if (!done) {
      value = probe();
      done = true;
    }
    return value;
  };
}

/**
 * A wrapper that runs a program without the capabilities that let root ignore
 * file permissions, so a `chmod 000` file is unreadable even to root.
 * Undefined when `setpriv` (util-linux) is missing. Probed on first use.
 */
export const withoutRootOverrides: () => readonly string[] | undefined = once(() => {
  try {
    new Deno.Command("setpriv", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync();
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"];
  } catch {
    return undefined;
  }
});

/** Run a command; true when it exits 0. */
export function succeeds(program: string, ...args: string[]): boolean {
  try {
    return new Deno.Command(program, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/**
 * Whether tmpfs can be mounted here (root on our machines). Tests that need it
 * are ignored otherwise, and this says why once. Probed on first use.
 */
export const canMount: () => boolean = once(() => {
  const dir = Deno.makeTempDirSync({ prefix: "mirror-mount-probe-" });
  try {
    const ok = succeeds("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir);
    if (ok) succeeds("umount", "--lazy", dir);
    if (!ok) console.error("tests needing tmpfs are ignored: 'mount -t tmpfs' failed (not root?)");
    return ok;
  } finally {
    Deno.removeSync(dir);
  }
});

/**
 * Mount a tmpfs of `size` (e.g. "1m") on `dir`; the returned function unmounts
 * it, lazily (`umount --lazy`): the mount point shows the folder underneath at
 * once even while a program is reading the tmpfs, like an unplugged disk.
 */
export function mountTmpfs(dir: string, size: string): () => void {
  Deno.mkdirSync(dir, { recursive: true });
  if (!succeeds("mount", "-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir)) {
    throw new Error(`cannot mount tmpfs on ${dir}`);
  }
  let mounted = true;
  return () => {
    if (mounted && succeeds("umount", "--lazy", dir)) mounted = false;
  };
}

/**
 * Poll `check` until it returns true, or fail after `ms`. A check that throws
 * NotFound (it walked a tree the program was changing) is tried again.
 */
export async function waitFor(
  what: string,
  check: () => boolean,
  ms = 10_000,
  pollMs = 20,
): Promise<void> {
  const deadline = Date.now() + ms;
  const holds = () => {
    try {
      return check();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  };
  while (!holds()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/**
 * A check that holds once a copy is being written in `replica`'s root: a temp
 * file with bytes in it (not the empty one that probes owners at start).
 */
export function copyUnderWay(replica: string): () => boolean {
  return () =>
    [...Deno.readDirSync(replica)].some((entry) =>
      entry.name.startsWith(TEMP_PREFIX) && Deno.lstatSync(`${replica}/${entry.name}`).size > 0
    );
}

/** A check that holds once the log file has a line ending in `text`. */
export function logHas(work: string, text: string | RegExp): () => boolean {
  return () => {
    try {
      return logLines(`${work}/log.txt`).some((line) =>
        typeof text === "string" ? line.endsWith(text) : text.test(line)
      );
    } catch {
      return false;
    }
  };
}

/** A check that holds once `work/rep` mirrors `work/src`. */
export function mirrored(work: string): () => boolean {
  return () => {
    try {
      return mirrorDiff(`${work}/src`, `${work}/rep`).length === 0;
    } catch {
      return false; // a folder renamed into place under our feet: look again
    }
  };
}

/** Start the program in the loop mode on `work/src` -> `work/rep`; `stop` signals and waits. */
export function startLoop(work: string, interval: string, ...extra: string[]) {
  return startLoopUnder([], work, interval, ...extra);
}

/** {@link startLoop}, run by `wrapper` (a program and its arguments, e.g. `setpriv ...`). */
export function startLoopUnder(
  wrapper: readonly string[] | undefined,
  work: string,
  interval: string,
  ...extra: string[]
) {
  const child = mirrorCommand(
    [...PAIR, "--time-interval", interval, ...extra],
    work,
    wrapper ?? [],
  ).spawn();
  const finished = child.output();
  return {
    child,
    async stop(signal: Deno.Signal = "SIGINT"): Promise<Deno.CommandOutput> {
      try {
        child.kill(signal);
      } catch {
        // already exited
      }
      return await finished;
    },
  };
}

/**
 * A fresh temp folder holding an empty `src`, removed after `body`. With
 * `tmpfs` (a size such as "6g") and where mounting works, the folder is a
 * tmpfs: big-file tests then run at memory speed instead of waiting on disk
 * writeback.
 */
export async function withWork(
  body: (work: string) => Promise<void> | void,
  options: { tmpfs?: string } = {},
): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "mirror-test-" });
  const unmount = options.tmpfs && canMount() ? mountTmpfs(work, options.tmpfs) : () => {};
  try {
    await Deno.mkdir(`${work}/src`);
    await body(work);
  } finally {
    unmount();
    await makeWritable(work);
    await Deno.remove(work, { recursive: true });
  }
}

async function makeWritable(root: string): Promise<void> {
  for (const [path, item] of listTree(root)) {
    if (item.kind === "dir") await Deno.chmod(`${root}/${path}`, 0o755);
  }
  await Deno.chmod(root, 0o755);
}

/** One object of a tree as the tests see it. */
export interface Item {
  kind: "file" | "dir" | "symlink" | "other";
  mode?: number;
  mtimeMs?: number;
  md5?: string;
  target?: string;
  /** A file's other names in the tree (hard links), sorted; absent: none. */
  links?: string[];
}

/** Every object under `root` (not following symlinks), keyed by relative path. */
export function listTree(root: string): Map<string, Item> {
  const items = new Map<string, Item>();
  /** Files with several names: inode -> their paths. */
  const names = new Map<number, string[]>();
  const walk = (dir: string) => {
    for (const child of Deno.readDirSync(dir === "" ? root : `${root}/${dir}`)) {
      const path = dir === "" ? child.name : `${dir}/${child.name}`;
      const abs = `${root}/${path}`;
      let info: Deno.FileInfo;
      try {
        info = Deno.lstatSync(abs);
      } catch (error) {
        // A name that is not valid UTF-8 reads with U+FFFD and cannot be opened.
        if (error instanceof Deno.errors.NotFound && child.name.includes("\uFFFD")) continue;
        throw error;
      }
      const mode = (info.mode ?? 0) & 0o7777;
      if (info.isFile) {
        const md5 = md5Of(abs);
        items.set(path, { kind: "file", mode, mtimeMs: info.mtime?.getTime(), md5 });
        if ((info.nlink ?? 1) > 1) names.set(info.ino!, [...names.get(info.ino!) ?? [], path]);
      } else if (info.isDirectory) {
        items.set(path, { kind: "dir", mode, mtimeMs: info.mtime?.getTime() });
        walk(path);
      } else if (info.isSymlink) {
        items.set(path, {
          kind: "symlink",
          mtimeMs: info.mtime?.getTime(),
          target: Deno.readLinkSync(abs),
        });
      } else {
        items.set(path, { kind: "other" });
      }
    }
  };
  walk("");
  for (const paths of names.values()) {
    if (paths.length < 2) continue;
    for (const path of paths) {
      items.get(path)!.links = paths.filter((other) => other !== path).sort();
    }
  }
  return items;
}

const buffer = new Uint8Array(1 << 20);

/** The test's own MD5 oracle (deliberately not the code under test). */
function md5Of(path: string): string {
  const hash = createHash("md5");
  using file = Deno.openSync(path);
  for (let n = file.readSync(buffer); n !== null; n = file.readSync(buffer)) {
    hash.update(buffer.subarray(0, n));
  }
  return hash.digest("hex");
}

/**
 * How the replica differs from the source (bytes, modes, mtimes, link texts),
 * one line per path; empty when it mirrors it exactly. FIFOs, sockets and
 * devices in the source are not expected in the replica.
 */
export function mirrorDiff(source: string, replica: string): string[] {
  const want = new Map([...listTree(source)].filter(([, item]) => item.kind !== "other"));
  const have = listTree(replica);
  const diff: string[] = [];
  for (const [path, item] of want) {
    const got = have.get(path);
    if (JSON.stringify(got) !== JSON.stringify(item)) {
      diff.push(`${path}: want ${JSON.stringify(item)}, have ${JSON.stringify(got)}`);
    }
  }
  for (const path of have.keys()) if (!want.has(path)) diff.push(`${path}: not in the source`);
  return diff;
}

/** Assert the replica holds exactly the source's objects: bytes, modes, mtimes, link texts. */
export function assertMirrored(source: string, replica: string): void {
  const diff = mirrorDiff(source, replica);
  assert.ok(diff.length === 0, `replica differs:\n${diff.slice(0, 20).join("\n")}`);
}

/** The messages (what follows `[LEVEL]: `) of the log lines of `work/log.txt` from line `mark` on. */
export function messagesSince(work: string, mark = 0): string[] {
  return logLines(`${work}/log.txt`).slice(mark).map((line) => line.slice(line.indexOf("]: ") + 3));
}

/** The log lines (without the trailing newline) of `file`. */
export function logLines(file: string): string[] {
  return Deno.readTextFileSync(file).split("\n").filter((line) => line !== "");
}

/** Write `text` to `path` (creating missing folders), then set `mode` and, if given, the mtime. */
export function writeFile(path: string, text: string, mode = 0o644, mtimeMs?: number): void {
  Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  Deno.writeTextFileSync(path, text);
  Deno.chmodSync(path, mode);
  if (mtimeMs !== undefined) Deno.utimeSync(path, new Date(mtimeMs), new Date(mtimeMs));
}

/** Every object under `root` with its content, as one string: to prove nothing changed. */
export function snapshot(root: string): string {
  try {
    return JSON.stringify([...listTree(root)].sort(([a], [b]) => (a < b ? -1 : 1)));
  } catch {
    return "missing";
  }
}

/**
 * Wait until the second of `path`'s ctime is over. A replica file's key is
 * trusted from the mirror's own write of it on, so a same-size edit with the
 * mtime restored within that second goes unseen (the documented gap): tests
 * of such edits make them in a later second.
 */
export async function afterCtimeSecond(path: string): Promise<void> {
  const ctime = Deno.statSync(path).ctime!.getTime();
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, ctime + 1000 - Date.now() + 5)));
}

/** Write `text` to `path`, then put its mtime back to what it was (same-size edit). */
export function editKeepingMtime(path: string, text: string): void {
  const before = Deno.statSync(path);
  if (before.size !== new TextEncoder().encode(text).length) throw new Error("size must stay");
  Deno.writeTextFileSync(path, text);
  Deno.utimeSync(path, before.atime!, before.mtime!);
}

/**
 * Whether an ext4 file system on a loop device can be made here (root,
 * e2fsprogs): for the fault-injecting disk. Probed on first use.
 */
export const canLoopMount: () => boolean = once(() => {
  if (!canMount() || !succeeds("sh", "-c", "command -v mkfs.ext4 && command -v filefrag")) {
    return false;
  }
  const dir = Deno.makeTempDirSync({ prefix: "mirror-loop-probe-" });
  try {
    const disk = new LoopDisk(`${dir}/disk.img`, `${dir}/mnt`, "8M");
    disk.unmount();
    disk.detach();
    return true;
  } catch {
    return false;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/**
 * A fault-injecting disk: an ext4 file system on a loop device, mounted on
 * `mountPoint`. {@link LoopDisk.zeroFile} overwrites a file's data blocks
 * with zeros on the device itself, file system unmounted, so the file keeps
 * its size, times and inode: what a power cut leaves of data that never
 * reached the disk.
 */
export class LoopDisk {
  readonly device: string;
  readonly mountPoint: string;

  constructor(image: string, mountPoint: string, size: string) {
    this.mountPoint = mountPoint;
    const run = (program: string, ...args: string[]) => {
      const output = new Deno.Command(program, { args, stdout: "piped", stderr: "piped" })
        .outputSync();
      if (!output.success) {
        throw new Error(`${program}: ${new TextDecoder().decode(output.stderr)}`);
      }
      return new TextDecoder().decode(output.stdout).trim();
    };
    run("truncate", "-s", size, image);
    this.device = run("losetup", "-f", "--show", image);
    run("mkfs.ext4", "-q", "-b", "4096", this.device);
    Deno.mkdirSync(mountPoint, { recursive: true });
    this.mount();
  }

  mount(): void {
    if (!succeeds("mount", this.device, this.mountPoint)) throw new Error("cannot mount");
  }

  unmount(): void {
    succeeds("umount", this.mountPoint);
  }

  detach(): void {
    succeeds("losetup", "-d", this.device);
  }

  /** Zero the data blocks of the file at `path` (inside the mount) behind the file system's back. */
  zeroFile(path: string): void {
    succeeds("sync", "-f", path); // its blocks allocated (ext4 allocates them late)
    const map = new Deno.Command("filefrag", { args: ["-v", path], stdout: "piped" }).outputSync();
    const extents = new TextDecoder().decode(map.stdout).split("\n")
      .map((line) => line.trim().match(/^\d+:\s+\d+\.\.\s*\d+:\s+(\d+)\.\.\s*\d+:\s+(\d+):/))
      .filter((match) => match !== null)
      .map((match) => [Number(match![1]), Number(match![2])] as const);
    if (extents.length === 0) throw new Error(`no extent for ${path}`);
    this.unmount();
    // Through dd: Deno lets a program open a device only with --allow-all.
    for (const [block, blocks] of extents) {
      const args = [`of=${this.device}`, "bs=4096", `seek=${block}`, `count=${blocks}`];
      if (!succeeds("dd", "if=/dev/zero", ...args, "conv=notrunc,fsync", "status=none")) {
        throw new Error(`dd on ${this.device} failed`);
      }
    }
    this.mount();
  }
}

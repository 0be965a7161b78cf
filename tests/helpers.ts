/**
 * Shared test helpers: spawn the real program, make temp folders, compare trees.
 *
 * @module
 */
import { createHash } from "node:crypto";
import assert from "node:assert/strict";

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
): Deno.Command {
  const command = [
    ...wrapper,
    Deno.execPath(),
    "run",
    "--allow-read",
    "--allow-write",
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

/** Run the program to completion in `cwd`. */
export async function runMirror(
  args: readonly string[],
  cwd: string,
  wrapper: readonly string[] = [],
): Promise<RunResult> {
  const output = await mirrorCommand(args, cwd, wrapper).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** `--once` on `work/src` -> `work/rep`, log in `work/log.txt`, plus `extra` flags. */
export function runOnce(work: string, ...extra: string[]): Promise<RunResult> {
  return runMirror(
    ["--source", "src", "--replica", "rep", "--log-file", "log.txt", "--once", ...extra],
    work,
  );
}

/**
 * Runs a program without the capabilities that let root ignore file
 * permissions, so a `chmod 000` file is unreadable even to root. Undefined
 * when `setpriv` (util-linux) is missing.
 */
export const WITHOUT_ROOT_OVERRIDES: readonly string[] | undefined = (() => {
  try {
    new Deno.Command("setpriv", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync();
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"];
  } catch {
    return undefined;
  }
})();

/** A fresh temp folder holding an empty `src`, removed after `body`. */
export async function withWork(body: (work: string) => Promise<void>): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "mirror-test-" });
  await Deno.mkdir(`${work}/src`);
  try {
    await body(work);
  } finally {
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
}

/** Every object under `root` (not following symlinks), keyed by relative path. */
export function listTree(root: string): Map<string, Item> {
  const items = new Map<string, Item>();
  const walk = (dir: string) => {
    for (const child of Deno.readDirSync(dir === "" ? root : `${root}/${dir}`)) {
      const path = dir === "" ? child.name : `${dir}/${child.name}`;
      const abs = `${root}/${path}`;
      const info = Deno.lstatSync(abs);
      const mode = (info.mode ?? 0) & 0o7777;
      if (info.isFile) {
        const md5 = createHash("md5").update(Deno.readFileSync(abs)).digest("hex");
        items.set(path, { kind: "file", mode, mtimeMs: info.mtime?.getTime(), md5 });
      } else if (info.isDirectory) {
        items.set(path, { kind: "dir", mode });
        walk(path);
      } else if (info.isSymlink) {
        items.set(path, { kind: "symlink", target: Deno.readLinkSync(abs) });
      } else {
        items.set(path, { kind: "other" });
      }
    }
  };
  walk("");
  return items;
}

/** Assert the replica holds exactly the source's objects: bytes, modes, mtimes, link texts. */
export function assertMirrored(source: string, replica: string): void {
  const want = [...listTree(source)].filter(([, item]) => item.kind !== "other");
  assert.deepEqual([...listTree(replica)].sort(byPath), want.sort(byPath));
}

function byPath(a: [string, Item], b: [string, Item]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

/** The log lines (without the trailing newline) of `file`. */
export function logLines(file: string): string[] {
  return Deno.readTextFileSync(file).split("\n").filter((line) => line !== "");
}

/** Write `text` to `path`, then put its mtime back to what it was (same-size edit). */
export function editKeepingMtime(path: string, text: string): void {
  const before = Deno.statSync(path);
  if (before.size !== new TextEncoder().encode(text).length) throw new Error("size must stay");
  Deno.writeTextFileSync(path, text);
  Deno.utimeSync(path, before.atime!, before.mtime!);
}

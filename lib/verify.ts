/**
 * `--verify`: compare the two trees completely — the MD5 of every file, read
 * afresh, no index trusted — and compute each side's tree digest, a one-line
 * proof that anyone can recompute with standard tools:
 *
 * the MD5 of the lines `TYPE MODE PATH CONTENT\n`, one per entry below the
 * root, sorted by their UTF-8 bytes (`LC_ALL=C sort`), where TYPE is `file`,
 * `dir` or `symlink`; MODE the permission bits as four octal digits; PATH the
 * path relative to the root with `\` written `\\` and a newline `\n`; CONTENT
 * the file's MD5 in hex, the symlink's target (escaped the same way), or `-`
 * for a folder. Excluded paths, FIFOs, sockets and devices are left out;
 * every other entry counts, whatever its name (the replica holds nothing of
 * the program's own but, during a cycle, its temp files).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { type Entry, NOUN } from "./entry.ts";
import { reason } from "./error.ts";
import type { ExcludeMatcher } from "./exclude.ts";
import { Hasher } from "./hash.ts";

import { formatTimestamp } from "./log.ts";
import { scanTree } from "./scan.ts";
import { comparePaths, joinPath } from "./paths.ts";

/** What {@link verifyTrees} found. */
export interface Verification {
  /** One line per difference, in path order; empty when the trees are identical. */
  readonly differences: readonly string[];
  readonly sourceDigest: string;
  readonly replicaDigest: string;
}

interface Side {
  readonly entries: ReadonlyMap<string, Entry>;
  readonly md5: ReadonlyMap<string, string>;
  readonly problems: readonly string[];
  readonly digest: string;
}

const noun = (kind: Entry["kind"]) => NOUN[kind].toLowerCase();

/**
 * Compare `source` and `replica` completely, reading every file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { verifyTrees } from "./verify.ts";
 * const a = Deno.makeTempDirSync(), b = Deno.makeTempDirSync();
 * for (const dir of [a, b]) Deno.writeTextFileSync(`${dir}/f`, "same");
 * Deno.chmodSync(`${a}/f`, 0o644), Deno.chmodSync(`${b}/f`, 0o644);
 * Deno.utimeSync(`${a}/f`, 0, 0), Deno.utimeSync(`${b}/f`, 0, 0);
 * const result = await verifyTrees(a, b);
 * assert.deepEqual(result.differences, []);
 * assert.equal(result.sourceDigest, result.replicaDigest);
 * ```
 */
export async function verifyTrees(
  source: string,
  replica: string,
  exclude?: ExcludeMatcher,
): Promise<Verification> {
  const hasher = new Hasher();
  const from = await readSide(source, "source", hasher, exclude);
  const to = await readSide(replica, "replica", hasher, exclude);
  const differences = [...from.problems, ...to.problems];
  const paths = [...new Set([...from.entries.keys(), ...to.entries.keys()])].sort(comparePaths);
  for (const path of paths) {
    const a = from.entries.get(path), b = to.entries.get(path);
    if (b === undefined) differences.push(`only in source: ${noun(a!.kind)} ${path}`);
    else if (a === undefined) differences.push(`only in replica: ${noun(b.kind)} ${path}`);
    else if (a.kind !== b.kind) {
      differences.push(`type differs: ${path} (${noun(a.kind)} vs ${noun(b.kind)})`);
    } else {
      const what = `${noun(a.kind)} ${path}`;
      if (a.kind === "file" && from.md5.get(path) !== to.md5.get(path)) {
        differences.push(`content differs: ${what}`);
      }
      if (a.kind === "symlink" && a.target !== b.target) {
        differences.push(`link differs: ${what} (${a.target} vs ${b.target})`);
      }
      if (a.kind !== "symlink" && a.mode !== b.mode) {
        differences.push(`mode differs: ${what} (${octal(a.mode)} vs ${octal(b.mode)})`);
      }
      if (a.kind !== "symlink" && a.mtimeMs !== b.mtimeMs) {
        const times = `${formatTimestamp(a.mtimeMs)} vs ${formatTimestamp(b.mtimeMs)}`;
        differences.push(`mtime differs: ${what} (${times})`);
      }
    }
  }
  return { differences, sourceDigest: from.digest, replicaDigest: to.digest };
}

async function readSide(
  root: string,
  side: string,
  hasher: Hasher,
  exclude?: ExcludeMatcher,
): Promise<Side> {
  const scan = await scanTree(root, { exclude });
  const problems = scan.problems.map(({ path, error }) =>
    `could not read ${side} ${path === "" ? "folder" : path}: ${reason(error)}`
  );
  const entries = new Map([...scan.tree].filter(([, entry]) => entry.kind !== "other"));
  const md5 = new Map<string, string>();
  for (const [path, entry] of entries) {
    if (entry.kind !== "file") continue;
    try {
      md5.set(path, await hasher.md5(joinPath(root, path), entry.size));
    } catch (error) {
      problems.push(`could not read ${side} ${path}: ${reason(error as Error)}`);
    }
  }
  const lines = [...entries].map(([path, entry]) => digestLine(path, entry, md5.get(path)));
  return { entries, md5, problems, digest: treeDigest(lines) };
}

/** The tree-digest line of one entry (`md5`: the file's MD5, for files). */
export function digestLine(path: string, entry: Entry, md5?: string): string {
  const content = entry.kind === "file"
    ? md5 ?? "?"
    : entry.kind === "symlink"
    ? escape(entry.target ?? "")
    : "-";
  return `${entry.kind} ${octal(entry.mode)} ${escape(path)} ${content}\n`;
}

/** MD5 of `lines` (each ending in `\n`) sorted by their UTF-8 bytes. */
export function treeDigest(lines: readonly string[]): string {
  const hash = createHash("md5");
  // UTF-16 order equals UTF-8 byte order unless a line holds a surrogate or a
  // character from U+E000 up; only then compare bytes (slower).
  if (lines.some((line) => /[\uD800-\uFFFF]/.test(line))) {
    const encoder = new TextEncoder();
    for (const bytes of lines.map((line) => encoder.encode(line)).sort(compareBytes)) {
      hash.update(bytes);
    }
  } else {
    // One update per few thousand lines: each call into node:crypto costs
    // more than hashing a line.
    const sorted = [...lines].sort();
    for (let i = 0; i < sorted.length; i += 4096) hash.update(sorted.slice(i, i + 4096).join(""));
  }
  return hash.digest("hex");
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

function escape(text: string): string {
  if (!text.includes("\\") && !text.includes("\n")) return text;
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

const OCTAL = Array.from({ length: 0o10000 }, (_, mode) => mode.toString(8).padStart(4, "0"));

function octal(mode: number): string {
  return OCTAL[mode] ?? mode.toString(8).padStart(4, "0");
}

/**
 * The tree digest: one MD5 for a whole tree, a one-line proof that anyone can
 * recompute with standard tools (the README gives a Python script):
 *
 * the MD5 of the lines `TYPE MODE PATH CONTENT\n`, one per entry below the
 * root, sorted by their UTF-8 bytes (`LC_ALL=C sort`), where TYPE is `file`,
 * `dir` or `symlink`; MODE the permission bits as four octal digits; PATH the
 * path relative to the root with `\` written `\\` and a newline `\n`; CONTENT
 * the file's MD5 in hex, the symlink's target (escaped the same way), or `-`
 * for a folder. Excluded paths, FIFOs, sockets and devices are left out;
 * every other entry counts, whatever its name.
 *
 * `node:crypto` is loaded on first use.
 *
 * @module
 */
import type { Entry, Tree } from "./entry.ts";
import type { PairIndex } from "./pair_index.ts";
import type { TreeReader } from "./replica.ts";

/**
 * The most a cycle reads only to put the source's tree digest in its summary;
 * a cycle that copied more says the digest was not computed (`--verify`
 * computes it at any size).
 */
export const DIGEST_BUDGET = { bytes: 64 * 1024 * 1024, files: 2000 } as const;

/** The tree-digest line of one entry (`md5`: the file's MD5, for files). */
export function digestLine(path: string, entry: Entry, md5?: string): string {
  const content = entry.kind === "file"
    ? md5 ?? "?"
    : entry.kind === "symlink"
    ? escape(entry.target ?? "")
    : "-";
  return `${entry.kind} ${octal(entry.mode)} ${escape(path)} ${content}\n`;
}

/**
 * MD5 of `lines` (each ending in `\n`) sorted by their UTF-8 bytes.
 *
 * @param lines the tree-digest lines, one per entry, in any order.
 * @returns the MD5 of the sorted lines, in lowercase hex.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { treeDigest } from "./digest.ts";
 * assert.equal(await treeDigest(["b\n", "a\n"]), await treeDigest(["a\n", "b\n"]));
 * ```
 */
export async function treeDigest(lines: readonly string[]): Promise<string> {
  const { createHash } = await import("node:crypto");
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

export function octal(mode: number): string {
  return OCTAL[mode] ?? mode.toString(8).padStart(4, "0");
}

/**
 * The source's tree digest after a cycle: file MD5s come from `index` where
 * their keys still hold, or from this cycle's comparison (`readThisCycle`);
 * the rest (files copied this cycle) are read here and recorded in `index`,
 * so that the next comparison need not read them. Reading is bounded
 * ({@link DIGEST_BUDGET}): a cycle that copied more gets undefined rather
 * than multiply its own cost (MD5 runs at ~450 MB/s, far slower than a kernel
 * copy). Undefined too when `signal` aborts.
 */
export async function sourceTreeDigest(
  tree: Tree,
  reader: TreeReader,
  index: PairIndex,
  readThisCycle: ReadonlyMap<string, string>,
  observedAt: number,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const inIndex = (path: string, entry: Entry) =>
    index.knows(path, "source", entry) && index.md5(path) !== undefined;
  let unknownBytes = 0, unknownFiles = 0;
  for (const [path, entry] of tree) {
    if (entry.kind !== "file" || inIndex(path, entry) || readThisCycle.has(path)) continue;
    unknownBytes += entry.size;
    unknownFiles++;
  }
  if (unknownBytes > DIGEST_BUDGET.bytes || unknownFiles > DIGEST_BUDGET.files) return undefined;
  const lines: string[] = [];
  for (const [path, entry] of tree) {
    if (entry.kind === "other") continue;
    let md5: string | undefined;
    if (entry.kind === "file") {
      md5 = inIndex(path, entry) ? index.md5(path) : readThisCycle.get(path);
      try {
        md5 ??= await reader.md5(path, entry.size, signal);
        index.recordSource(path, entry, md5, observedAt);
      } catch {
        if (signal?.aborted) return undefined; // stopped: no digest
        md5 = "?"; // unreadable or gone: the digest says so
      }
    }
    lines.push(digestLine(path, entry, md5));
  }
  return await treeDigest(lines);
}

/**
 * `--verify`: compare the two trees completely — the MD5 of every file, read
 * afresh, no index trusted — and compute each side's tree digest (see
 * `digest.ts`). The replica holds nothing of the program's own but, during a
 * cycle, its temp files, so every entry counts. It reports whatever the next
 * cycle would change that it can see without the state: contents, types,
 * modes, mtimes (symlinks' too), link targets, extra entries (FIFOs,
 * sockets and devices in the replica included), when asked, hard links (a
 * local replica keeps them: the names of one source file must be the names
 * of one replica file, and no more) and owners (a mirror run as root keeps
 * them). The tree digests cover names and contents: hard links are not part
 * of them (an S3 replica holds each name as an object of its own).
 *
 * @module
 */
import { octal, treeDigest } from "./digest.ts";
import { type Entry, NOUN, sameMtime } from "../core/entry.ts";
import { reason } from "../core/error.ts";
import type { ExcludeMatcher } from "../core/exclude.ts";
import { formatTimestamp } from "../core/text.ts";
import { comparePaths } from "../core/paths.ts";
import type { TreeReader } from "../core/replica.ts";
import { scanTree } from "./scan.ts";

/** What {@link verifyTrees} found. */
export interface Verification {
  /** One line per difference, in path order; empty when the trees are identical. */
  readonly differences: readonly string[];
  /** The source's tree digest (see `digest.ts`). */
  readonly sourceDigest: string;
  /** The replica's tree digest: equal to the source's when nothing differs. */
  readonly replicaDigest: string;
}

interface Side {
  readonly entries: ReadonlyMap<string, Entry>;
  /** The other names of the file `path` (hard links), sorted. */
  readonly names: (path: string, entry: Entry) => readonly string[];
  readonly md5: ReadonlyMap<string, string>;
  readonly problems: readonly string[];
  readonly digest: string;
}

const noun = (kind: Entry["kind"]) => NOUN[kind].toLowerCase();

/** A file's other names, for a line: up to three of them. */
function partners(names: readonly string[]): string {
  if (names.length === 0) return "no other name";
  const shown = names.slice(0, 3).join(", ");
  return `also ${shown}${names.length > 3 ? ` and ${names.length - 3} more` : ""}`;
}

/** Options of {@link verifyTrees}. */
export interface VerifyOptions {
  /**
   * Compare owners (user and group): a mirror run as root keeps them.
   *
   * @default {false}
   */
  readonly owners?: boolean;
  /**
   * Compare hard links: the files that share an inode in each tree (a
   * local replica keeps them).
   *
   * @default {false}
   */
  readonly links?: boolean;
}

/**
 * Compare `source` and `replica` completely, reading every file.
 *
 * @param source the source tree.
 * @param replica the replica tree.
 * @param exclude paths left out of both (`--exclude`). Default: none.
 * @param options see {@link VerifyOptions}.
 * @returns the differences, one line each, and both tree digests.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalTree } from "../backends/local/local.ts";
 * import { verifyTrees } from "./verify.ts";
 * const a = Deno.makeTempDirSync(), b = Deno.makeTempDirSync();
 * for (const dir of [a, b]) Deno.writeTextFileSync(`${dir}/f`, "same");
 * Deno.chmodSync(`${a}/f`, 0o644), Deno.chmodSync(`${b}/f`, 0o644);
 * Deno.utimeSync(`${a}/f`, 0, 0), Deno.utimeSync(`${b}/f`, 0, 0);
 * Deno.utimeSync(a, 0, 0), Deno.utimeSync(b, 0, 0);
 * const result = await verifyTrees(new LocalTree(a), new LocalTree(b));
 * assert.deepEqual(result.differences, []);
 * assert.equal(result.sourceDigest, result.replicaDigest);
 * Deno.removeSync(a, { recursive: true });
 * Deno.removeSync(b, { recursive: true });
 * ```
 */
export async function verifyTrees(
  source: TreeReader,
  replica: TreeReader,
  exclude?: ExcludeMatcher,
  options: VerifyOptions = {},
): Promise<Verification> {
  const from = await readSide(source, "source", exclude);
  const to = await readSide(replica, "replica", exclude);
  const differences = [...from.problems, ...to.problems];
  const paths = [...new Set([...from.entries.keys(), ...to.entries.keys()])].sort(comparePaths);
  for (const path of paths) {
    let a = from.entries.get(path);
    const b = to.entries.get(path);
    // FIFOs, sockets and devices of the source are never mirrored: one in the
    // replica beside one of the source is left alone, any other is removed.
    if (a?.kind === "other") {
      if (b === undefined || b.kind === "other") continue;
      a = undefined;
    }
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
      if (!sameMtime(a.mtimeMs, b.mtimeMs, replica.mtimePrecision) && a.kind !== "other") {
        const times = `${formatTimestamp(a.mtimeMs)} vs ${formatTimestamp(b.mtimeMs)}`;
        differences.push(`mtime differs: ${what} (${times})`);
      }
      if (options.owners && (a.uid !== b.uid || a.gid !== b.gid)) {
        differences.push(`owner differs: ${what} (${a.uid}:${a.gid} vs ${b.uid}:${b.gid})`);
      }
      if (options.links && a.kind === "file") {
        const there = from.names(path, a), here = to.names(path, b);
        if (there.join("\0") !== here.join("\0")) {
          differences.push(`hard links differ: ${what} (${partners(there)} vs ${partners(here)})`);
        }
      }
    }
  }
  return { differences, sourceDigest: from.digest, replicaDigest: to.digest };
}

async function readSide(
  tree: TreeReader,
  side: string,
  exclude?: ExcludeMatcher,
): Promise<Side> {
  await tree.open();
  const scan = await scanTree(tree, { exclude });
  const problems = scan.problems.map(({ path, error }) =>
    `could not read ${side} ${path === "" ? "folder" : path}: ${reason(error)}`
  );
  const entries = new Map(scan.tree);
  const md5 = new Map<string, string>();
  for (const [path, entry] of entries) {
    if (entry.kind !== "file") continue;
    try {
      md5.set(path, await tree.md5(path, entry.size));
    } catch (error) {
      problems.push(`could not read ${side} ${path}: ${reason(error as Error)}`);
    }
  }
  // Files with several names: inode -> their names in this tree.
  const byInode = new Map<number, string[]>();
  for (const [path, entry] of entries) {
    if (entry.kind !== "file" || (entry.nlink ?? 1) <= 1) continue;
    const names = byInode.get(entry.ino);
    if (names === undefined) byInode.set(entry.ino, [path]);
    else names.push(path);
  }
  const names = (path: string, entry: Entry) =>
    (entry.nlink ?? 1) <= 1
      ? []
      : (byInode.get(entry.ino) ?? []).filter((other) => other !== path).sort(comparePaths);
  // The digest leaves FIFOs, sockets and devices out.
  const digest = await treeDigest(entries, (path) => md5.get(path));
  return { entries, names, md5, problems, digest };
}

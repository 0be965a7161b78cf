/**
 * The one check that a source file did not change while it was copied, and
 * the words a skipped copy is reported with, whatever the replica: a copy is
 * put in place (renamed over its name, or recorded) only when the source is
 * still the file that was listed. Each backend makes it at its own commit
 * point, through {@link checkSource}; the source is read through
 * {@link openSource}, which makes sure the file opened is the one listed.
 *
 * @module
 */
import { entryFromInfo, statKey } from "./entry.ts";
import type { WriteResult } from "./replica.ts";

/** What became of a source file since it was listed. */
export type SourceCheck =
  /** As listed (size, mtime, ctime, inode). */
  | "same"
  /** Another file, or the same one changed. */
  | "changed"
  /** The same file, only longer (appended to, perhaps). */
  | "grew"
  /** Gone. */
  | "gone";

/**
 * What became of the source file `path`, listed with the stat key `expected`.
 *
 * @param path the source file's absolute path.
 * @param expected its `statKey` when listed.
 * @param lstat how to examine it (a worker's own, or a test's).
 * @returns the verdict.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { entryFromInfo, statKey } from "./entry.ts";
 * import { checkSource } from "./source.ts";
 * const file = Deno.makeTempFileSync();
 * const key = statKey(entryFromInfo(Deno.lstatSync(file)));
 * assert.equal(checkSource(file, key), "same");
 * Deno.writeTextFileSync(file, "more", { append: true });
 * assert.equal(checkSource(file, key), "grew");
 * Deno.removeSync(file);
 * assert.equal(checkSource(file, key), "gone");
 * ```
 */
export function checkSource(
  path: string,
  expected: string,
  lstat: (path: string) => Deno.FileInfo = Deno.lstatSync,
): SourceCheck {
  let info: Deno.FileInfo;
  try {
    info = lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "gone";
    throw error;
  }
  const now = entryFromInfo(info);
  if (statKey(now) === expected) return "same";
  const [size, , , ino] = expected.split(":").map(Number);
  return now.kind === "file" && now.ino === ino && now.size > size! ? "grew" : "changed";
}

/**
 * How a copy whose source is no longer as listed ends: skipped, in the words
 * every backend uses.
 *
 * @param check the verdict of {@link checkSource} (not `same`).
 * @returns the write's result.
 */
export function notCopied(check: Exclude<SourceCheck, "same">): WriteResult {
  if (check === "gone") {
    return { status: "skipped", reason: "it vanished before it could be copied" };
  }
  return {
    status: "skipped",
    reason: "it changed while being copied",
    changed: true,
    ...(check === "grew" ? { grew: true } : {}),
  };
}

/**
 * Open the source file `path` for reading, making sure it is the file that
 * was listed (its stat key, `expected`).
 *
 * @param path the source file's absolute path.
 * @param expected its `statKey` when listed.
 * @returns the open file, or why it cannot be copied (a skip).
 */
export async function openSource(
  path: string,
  expected: string,
): Promise<Deno.FsFile | WriteResult> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return notCopied("gone");
    throw error;
  }
  if (statKey(entryFromInfo(await file.stat())) !== expected) {
    file.close();
    return notCopied("changed");
  }
  return file;
}

/**
 * The names `--backup-dir` gives: one folder per full cycle, named by the
 * cycle's start in UTC (`2026-12-05T23-04-05Z`: sortable, no colon), and a
 * numbered suffix for a name already taken there (`a.txt.~1~`, as GNU
 * `cp --backup=numbered` names its copies). Only folders named so are ever
 * removed by `--backup-keep`.
 *
 * @module
 */

const CYCLE_FOLDER = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$/;

/**
 * The cycle folder of a full cycle started at `at`.
 *
 * @param at when the cycle started.
 * @returns its name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cycleFolderOf, isCycleFolder } from "./backup_names.ts";
 * const name = cycleFolderOf(new Date(Date.UTC(2026, 11, 5, 23, 4, 5, 678)));
 * assert.equal(name, "2026-12-05T23-04-05Z");
 * assert.ok(isCycleFolder(name));
 * assert.ok(!isCycleFolder("2026-12-05"));
 * ```
 */
export function cycleFolderOf(at: Date): string {
  return `${at.toISOString().slice(0, 19).replaceAll(":", "-")}Z`;
}

/**
 * Whether `name` is a cycle folder's name (see {@link cycleFolderOf}).
 *
 * @param name an entry's name.
 * @returns true when the program names its cycle folders so.
 */
export function isCycleFolder(name: string): boolean {
  return CYCLE_FOLDER.test(name);
}

/**
 * Where an entry goes below the backup folder: `path` (its cycle folder
 * first), each part of it that is taken given a numbered suffix (`a.txt.~1~`,
 * `.~2~`, …): the last part where anything is there, a folder above it where
 * something other than a real folder is there (a file or symlink kept
 * earlier in the cycle: a later entry below that name never goes through it).
 *
 * @param path the entry's path below the backup folder (`CYCLE/dir/name`).
 * @param kindAt what is at a path below the backup folder now: a real folder,
 *   anything else, or nothing; `last`: whether it is the entry's own name.
 * @returns the path to use.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backupPathOf } from "./backup_names.ts";
 * const there = new Map([["F", "dir"], ["F/d", "dir"], ["F/d/a.txt", "other"],
 *   ["F/d/a.txt.~1~", "other"], ["F/x", "other"]] as const);
 * const kindAt = (path: string) => there.get(path as never);
 * assert.equal(await backupPathOf("F/d/a.txt", kindAt), "F/d/a.txt.~2~");
 * assert.equal(await backupPathOf("F/d/b.txt", kindAt), "F/d/b.txt");
 * assert.equal(await backupPathOf("F/x/y", kindAt), "F/x.~1~/y"); // never through a file kept as F/x
 * ```
 */
export async function backupPathOf(
  path: string,
  kindAt: (path: string, last: boolean) => MaybeKind | Promise<MaybeKind>,
): Promise<string> {
  const parts = path.split("/");
  let done = "";
  for (let i = 0; i < parts.length; i++) {
    const last = i === parts.length - 1;
    const base = done === "" ? parts[i]! : `${done}/${parts[i]}`;
    let name = base;
    for (let n = 1;; n++) {
      const kind = await kindAt(name, last);
      if (kind === undefined || (!last && kind === "dir")) break;
      name = `${base}.~${n}~`;
    }
    done = name;
  }
  return done;
}

/** What {@link backupPathOf} is told is at a path: a real folder, anything else, or nothing. */
export type MaybeKind = "dir" | "other" | undefined;

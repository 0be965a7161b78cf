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
 * The first of `path`, `path.~1~`, `path.~2~`, … that `taken` says is free.
 *
 * @param path where the entry would go.
 * @param taken whether something is at a path already.
 * @returns the path to use.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backupNameOf } from "./backup_names.ts";
 * const there = new Set(["d/a.txt", "d/a.txt.~1~"]);
 * assert.equal(await backupNameOf("d/a.txt", (path) => there.has(path)), "d/a.txt.~2~");
 * assert.equal(await backupNameOf("d/b.txt", (path) => there.has(path)), "d/b.txt");
 * ```
 */
export async function backupNameOf(
  path: string,
  taken: (path: string) => boolean | Promise<boolean>,
): Promise<string> {
  let name = path;
  for (let n = 1; await taken(name); n++) name = `${path}.~${n}~`;
  return name;
}

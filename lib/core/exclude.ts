/**
 * `--exclude` patterns, with gitignore semantics (the `ignore` package, the
 * matcher eslint and prettier use): `*.tmp` matches at any depth, a trailing
 * `/` only folders, a leading `/` only at the root.
 *
 * @module
 */
/** Whether a path (relative to the root) is left out; `isDir` for folders. */
export type ExcludeMatcher = (path: string, isDir: boolean) => boolean;

/**
 * A matcher for `patterns`, or undefined when there are none. The matcher's
 * package is loaded only then: most runs exclude nothing and so do not pay
 * for loading it (~10-20 ms).
 *
 * @param patterns gitignore-style patterns (`--exclude`).
 * @returns the matcher, or undefined when `patterns` is empty.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { excludeMatcher } from "./exclude.ts";
 * const excluded = (await excludeMatcher(["*.tmp", "node_modules/", "/build"]))!;
 * assert.ok(excluded("a/b.tmp", false));
 * assert.ok(excluded("web/node_modules", true));
 * assert.ok(!excluded("web/node_modules", false));
 * assert.ok(excluded("build", true) && !excluded("src/build", true));
 * ```
 */
export async function excludeMatcher(
  patterns: readonly string[],
): Promise<ExcludeMatcher | undefined> {
  if (patterns.length === 0) return undefined;
  const { default: ignore } = await import("npm:ignore@^7.0.5");
  const matcher = ignore().add([...patterns]);
  return (path, isDir) => matcher.ignores(isDir ? `${path}/` : path);
}

/**
 * Whether the folder `dir` (relative to the root) or a folder above it is
 * excluded.
 *
 * @param exclude the matcher (undefined: nothing is excluded).
 * @param dir the folder's path.
 * @returns true when it is left out.
 */
export function isExcludedFolder(exclude: ExcludeMatcher | undefined, dir: string): boolean {
  if (exclude === undefined) return false;
  for (let at = dir; at !== ""; at = at.slice(0, Math.max(0, at.lastIndexOf("/")))) {
    if (exclude(at, true)) return true;
  }
  return false;
}

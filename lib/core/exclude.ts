/**
 * `--exclude` patterns and `--exclude-from` files, with gitignore semantics
 * (the `ignore` package, the matcher eslint and prettier use): `*.tmp` matches
 * at any depth, a trailing `/` only folders, a leading `/` only at the root,
 * `!` re-includes, and the last rule that matches wins.
 *
 * @module
 */
/** Whether a path (relative to the root) is left out; `isDir` for folders. */
export type ExcludeMatcher = (path: string, isDir: boolean) => boolean;

/**
 * A matcher for the rules of `texts`, then `patterns` (a later rule wins over
 * an earlier one), or undefined when there are none. The matcher's package is
 * loaded only then: most runs exclude nothing and so do not pay for loading
 * it (~10-20 ms).
 *
 * @param patterns gitignore-style patterns, one each (`--exclude`).
 * @param texts whole files in .gitignore syntax (`--exclude-from`): a rule a
 * line, `#` comments, CRLF line ends and a leading BOM read as git reads them.
 * Default: none.
 * @returns the matcher, or undefined when both are empty.
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
 * const fromFile = (await excludeMatcher(["!keep.log"], ["# logs\r\n*.log\r\n"]))!;
 * assert.ok(fromFile("a.log", false) && !fromFile("keep.log", false));
 * ```
 */
export async function excludeMatcher(
  patterns: readonly string[],
  texts: readonly string[] = [],
): Promise<ExcludeMatcher | undefined> {
  if (patterns.length === 0 && texts.length === 0) return undefined;
  const { default: ignore } = await import("npm:ignore@^7.0.5");
  const matcher = ignore();
  for (const text of texts) matcher.add(text); // a string: split into lines as git does
  matcher.add([...patterns]); // an array: one pattern each
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

/**
 * `--exclude` patterns, with gitignore semantics (the `ignore` package, the
 * matcher eslint and prettier use): `*.tmp` matches at any depth, a trailing
 * `/` only folders, a leading `/` only at the root.
 *
 * @module
 */
import ignore from "npm:ignore@^7.0.5";

/** Whether a path (relative to the root) is left out; `isDir` for folders. */
export type Exclude = (path: string, isDir: boolean) => boolean;

/**
 * A matcher for `patterns`, or undefined when there are none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { excludeMatcher } from "./exclude.ts";
 * const excluded = excludeMatcher(["*.tmp", "node_modules/", "/build"])!;
 * assert.ok(excluded("a/b.tmp", false));
 * assert.ok(excluded("web/node_modules", true));
 * assert.ok(!excluded("web/node_modules", false));
 * assert.ok(excluded("build", true) && !excluded("src/build", true));
 * ```
 */
export function excludeMatcher(patterns: readonly string[]): Exclude | undefined {
  if (patterns.length === 0) return undefined;
  const matcher = ignore().add([...patterns]);
  return (path, isDir) => matcher.ignores(isDir ? `${path}/` : path);
}

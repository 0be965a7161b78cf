/**
 * Paths: entry paths inside a tree (relative, `/`-separated, never starting
 * with `/`; `""` is the root itself), their order, and the real paths of the
 * folders a run works on.
 *
 * @module
 */
import { basename, dirname, resolve } from "node:path";

/** `a/b/c` -> `a/b`; top-level paths -> `""`. */
export function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "" : path.slice(0, slash);
}

/** Whether `path`'s parent, or any folder above it (`""` included), is in `dirs`. */
export function hasAncestorIn(path: string, dirs: ReadonlySet<string>): boolean {
  if (dirs.size === 0) return false;
  for (let dir = parentOf(path);; dir = parentOf(dir)) {
    if (dirs.has(dir)) return true;
    if (dir === "") return false;
  }
}

/** Join a root folder and a relative entry path (`""` is the root itself). */
export function joinPath(root: string, path: string): string {
  if (path === "") return root;
  return root.endsWith("/") ? root + path : `${root}/${path}`;
}

/** Whether `path` lies below the folder `dir` (both entry paths). */
export function isBelow(path: string, dir: string): boolean {
  return dir === ""
    ? path !== ""
    : path.length > dir.length && path.startsWith(dir) && path[dir.length] === "/";
}

/**
 * The walk order of paths: by code point (so by UTF-8 bytes, as
 * `LC_ALL=C sort` and Python's `sorted` order names), `/` ranking below every
 * other character, so that a folder is followed by its whole subtree (`a`,
 * `a/x`, `a b`). A depth-first walk that lists each folder's entries in
 * {@link compareNames} order visits paths in this order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { comparePaths } from "./paths.ts";
 * assert.deepEqual(["a b", "a/x", "a"].sort(comparePaths), ["a", "a/x", "a b"]);
 * assert.deepEqual(["\u{1F600}", "\uFFFD"].sort(comparePaths), ["\uFFFD", "\u{1F600}"]);
 * ```
 */
export function comparePaths(a: string, b: string): number {
  // The walk compares mostly names both listings hold: the runtime finds those equal at once.
  if (a === b) return 0;
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x !== y) return rank(x) - rank(y);
  }
  return a.length - b.length;
}

/** The order of names in a folder (see {@link comparePaths}). */
export const compareNames: (a: string, b: string) => number = comparePaths;

/**
 * Sort a folder's names in {@link compareNames} order, in place. Names hold
 * no `/`, so that order is UTF-16's (the runtime's own sort, with no call
 * into JavaScript per comparison) but for surrogates (characters above
 * U+FFFF), which rank after U+E000-U+FFFF: the runtime sorts, one pass checks
 * the neighbours, and only a folder where they are out of order is sorted again.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sortNames } from "./paths.ts";
 * assert.deepEqual(sortNames(["b", "a b", "a"]), ["a", "a b", "b"]);
 * assert.deepEqual(sortNames(["\u{1F600}", "\uFFFD", "z"]), ["z", "\uFFFD", "\u{1F600}"]);
 * ```
 *
 * @param names the names (none holding `/`).
 * @returns `names`, sorted.
 */
export function sortNames(names: string[]): string[] {
  names.sort();
  // Where the two orders part, some neighbours are out of the walk's order.
  for (let i = 1; i < names.length; i++) {
    if (comparePaths(names[i - 1]!, names[i]!) > 0) return names.sort(comparePaths);
  }
  return names;
}

/**
 * A UTF-16 code unit's rank in the order of {@link comparePaths}: `/` first;
 * surrogates (which encode characters above U+FFFF) after every other unit.
 *
 * @param unit a UTF-16 code unit (`charCodeAt`).
 * @returns its rank: compare two units' ranks to order them.
 */
export function rank(unit: number): number {
  if (unit === 47) return -1;
  if (unit < 0xd800) return unit;
  return unit < 0xe000 ? unit + 0x2000 : unit - 0x800;
}

/**
 * The real absolute form of `path`: symlinks resolved in the part that exists,
 * the rest appended as spelled (`..` already folded by `resolve`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { realPathOf } from "./paths.ts";
 * const dir = Deno.realPathSync(Deno.makeTempDirSync());
 * assert.equal(realPathOf(`${dir}/x/../not/yet`), `${dir}/not/yet`);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function realPathOf(path: string): string {
  const absolute = absolutePath(path);
  try {
    return Deno.realPathSync(absolute);
  } catch (error) {
    // Read access scoped to the folders themselves (--allow-read=SRC,REPLICA): a
    // parent that may not be looked at is taken as spelled.
    if (error instanceof Deno.errors.NotCapable) return absolute;
    if (!(error instanceof Deno.errors.NotFound) || dirname(absolute) === absolute) throw error;
    return `${realPathOf(dirname(absolute)).replace(/\/$/, "")}/${basename(absolute)}`;
  }
}

/**
 * `path` made absolute against the working folder, normalized (as
 * `node:path`'s `resolve` makes it, without asking `process.cwd()`: the
 * first use of `process` costs every start of the program ~5 ms).
 *
 * @param path a path as given (relative to the working folder, or absolute).
 * @returns the absolute path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { absolutePath } from "./paths.ts";
 * assert.equal(absolutePath("/a/b/../c/"), "/a/c");
 * assert.equal(absolutePath("x"), `${Deno.cwd()}/x`);
 * ```
 */
export function absolutePath(path: string): string {
  // An absolute path needs no working folder (nor the permission to read it).
  return path.startsWith("/") ? resolve(path) : resolve(Deno.cwd(), path);
}

/**
 * A folder's identity in the state file: the real path of the folder it is in,
 * plus its own name as given. A symlink given as the folder itself stays one
 * (`/srv/current`), so switching it to another release keeps the identity.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stablePathOf } from "./paths.ts";
 * const dir = Deno.realPathSync(Deno.makeTempDirSync());
 * Deno.mkdirSync(`${dir}/release-1`);
 * Deno.symlinkSync("release-1", `${dir}/current`);
 * assert.equal(stablePathOf(`${dir}/current`), `${dir}/current`);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function stablePathOf(path: string): string {
  const absolute = absolutePath(path);
  const parent = dirname(absolute);
  if (parent === absolute) return absolute;
  return `${realPathOf(parent).replace(/\/$/, "")}/${basename(absolute)}`;
}

/** Whether `inner` is `outer` or lies below it (both real absolute paths). */
export function isWithin(inner: string, outer: string): boolean {
  return inner === outer || inner.startsWith(outer.endsWith("/") ? outer : `${outer}/`);
}

/** Whether anything is at `path` (a symlink itself counts, whatever it points to). */
export function pathExists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether a replica argument names a replica elsewhere: a colon before its
 * first slash (rsync's rule), as in `s3://bucket`, `sftp://host/path` or
 * `host:path`; `./a:b` and `/a:b` are folders here.
 *
 * @param replica `--replica` as given.
 * @returns true when it is not a local path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isRemote } from "./paths.ts";
 * assert.ok(isRemote("backup:/srv/copy") && isRemote("s3://bucket"));
 * assert.ok(!isRemote("./a:b") && !isRemote("copy") && !isRemote("/srv/a:b"));
 * ```
 */
export function isRemote(replica: string): boolean {
  const colon = replica.indexOf(":");
  const slash = replica.indexOf("/");
  return colon >= 0 && (slash < 0 || colon < slash);
}

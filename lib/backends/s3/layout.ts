/**
 * How a tree is laid out in a bucket, by rclone's conventions, so that
 * either tool reads the other's replica (issue #13; the S3 replica builds on
 * it):
 *
 * - a file is the object `PREFIX/path`; its mtime is `x-amz-meta-mtime`
 *   (seconds, a decimal fraction), its mode `x-amz-meta-mode` (octal, with
 *   the type bits, as `lstat` gives it: `100644`), its MD5
 *   `x-amz-meta-md5chksum` (base64), needed where the ETag is not the MD5
 *   (multipart uploads);
 * - a symlink is the object `path.rclonelink` whose content is its target
 *   (rclone's `--links`), so a source file whose name ends in `.rclonelink`
 *   cannot be mirrored ({@link isLinkName});
 * - a folder is the marker object `path/` (rclone's
 *   `--s3-directory-markers`), so that an empty folder exists and keeps its
 *   mode and mtime.
 *
 * @module
 */
import type { Entry } from "../../core/entry.ts";
import { compareNames } from "../../core/paths.ts";
import type { S3Folder, S3Object } from "./store.ts";

/** The suffix of a symlink's object. */
export const LINK_SUFFIX = ".rclonelink";

const TYPE_BITS = { file: 0o100000, dir: 0o040000, symlink: 0o120000 } as const;

/**
 * Whether a source entry named `name` would read back as a symlink (so it
 * cannot be mirrored to a bucket as it is).
 *
 * @param name an entry's name.
 * @returns true when it ends in {@link LINK_SUFFIX}.
 */
export function isLinkName(name: string): boolean {
  return name.endsWith(LINK_SUFFIX);
}

/**
 * The object name of an entry named `name` of `kind` in its folder.
 *
 * @param name the entry's name.
 * @param kind what it is.
 * @returns the name of the object that holds it (`name/` for a folder marker).
 */
export function objectName(name: string, kind: "file" | "dir" | "symlink"): string {
  return kind === "symlink" ? name + LINK_SUFFIX : kind === "dir" ? `${name}/` : name;
}

/**
 * The user metadata an object gets for `entry`.
 *
 * @param entry a file, folder or symlink of the source.
 * @param md5 the file's MD5 (hex), when known.
 * @returns the `x-amz-meta-*` values, by name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { metaOf } from "./layout.ts";
 * const file = { kind: "file", size: 5, mtimeMs: 1_700_000_000_123, ctimeMs: 0, ino: 1, mode: 0o640 } as const;
 * assert.deepEqual(metaOf(file, "5d41402abc4b2a76b9719d911017c592"), {
 *   mtime: "1700000000.123", mode: "100640", md5chksum: "XUFAKrxLKna5cZ2REBfFkg==",
 * });
 * ```
 */
export function metaOf(
  entry: Entry & { kind: "file" | "dir" | "symlink" },
  md5?: string,
): Record<string, string> {
  const meta: Record<string, string> = {
    mtime: seconds(entry.mtimeMs),
    mode: (TYPE_BITS[entry.kind] | (entry.mode & 0o7777)).toString(8),
  };
  if (md5 !== undefined && entry.kind === "file") meta.md5chksum = base64OfHex(md5);
  return meta;
}

/**
 * The mtime and mode that metadata records, where it does.
 *
 * @param meta an object's user metadata.
 * @returns the mtime (epoch ms) and permission bits found, and the MD5 (hex).
 */
export function attributesOf(
  meta: Readonly<Record<string, string>>,
): { mtimeMs?: number; mode?: number; md5?: string } {
  const found: { mtimeMs?: number; mode?: number; md5?: string } = {};
  const mtime = Number(meta.mtime);
  if (meta.mtime !== undefined && meta.mtime !== "" && Number.isFinite(mtime)) {
    found.mtimeMs = Math.round(mtime * 1000);
  }
  if (meta.mode !== undefined && /^[0-7]+$/.test(meta.mode)) {
    found.mode = parseInt(meta.mode, 8) & 0o7777;
  }
  if (meta.md5chksum !== undefined) {
    const md5 = hexOfBase64(meta.md5chksum);
    if (md5 !== undefined) found.md5 = md5;
  }
  return found;
}

/** One entry of a folder as its listing shows it (no metadata: listings carry none). */
export interface LaidOut {
  /** The entry's name in the tree. */
  readonly name: string;
  /** What it is. */
  readonly kind: "file" | "dir" | "symlink";
  /** The object that holds it (a folder: undefined, its marker is the folder's own). */
  readonly object?: S3Object;
}

/**
 * A folder listing read as the tree's entries, in the tree's name order
 * (`compareNames`, not the keys' byte order): objects are files, those
 * ending in {@link LINK_SUFFIX} symlinks, common prefixes folders. A name that
 * is two things at once (a folder and an object, a file and a symlink) is
 * reported in `clashes`, and only its folder or file is kept.
 *
 * @param folder a listing from `S3Store.list`.
 * @returns the entries, and the names that clash.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { entriesOf } from "./layout.ts";
 * const object = (name: string) => ({ name, size: 1, etag: "", lastModified: 0 });
 * const { entries } = entriesOf({
 *   objects: [object("a b"), object("l.rclonelink")], folders: ["a"], marker: false,
 * });
 * assert.deepEqual(entries.map((e) => [e.name, e.kind]), [["a", "dir"], ["a b", "file"], ["l", "symlink"]]);
 * ```
 */
export function entriesOf(folder: S3Folder): { entries: LaidOut[]; clashes: string[] } {
  const byName = new Map<string, LaidOut>();
  const clashes: string[] = [];
  const add = (entry: LaidOut) => {
    const there = byName.get(entry.name);
    if (there === undefined) return void byName.set(entry.name, entry);
    clashes.push(entry.name);
    // A folder wins over an object, a file over a symlink.
    const rank = { dir: 0, file: 1, symlink: 2 } as const;
    if (rank[entry.kind] < rank[there.kind]) byName.set(entry.name, entry);
  };
  for (const name of folder.folders) add({ name, kind: "dir" });
  for (const object of folder.objects) {
    if (isLinkName(object.name) && object.name.length > LINK_SUFFIX.length) {
      add({ name: object.name.slice(0, -LINK_SUFFIX.length), kind: "symlink", object });
    } else add({ name: object.name, kind: "file", object });
  }
  const entries = [...byName.values()].sort((a, b) => compareNames(a.name, b.name));
  return { entries, clashes: [...new Set(clashes)].sort(compareNames) };
}

/** Epoch ms as seconds with the fraction rclone reads (`1700000000.123`). */
function seconds(ms: number): string {
  const whole = Math.floor(ms / 1000), fraction = ms - whole * 1000;
  return fraction === 0 ? String(whole) : `${whole}.${String(fraction).padStart(3, "0")}`;
}

function base64OfHex(hex: string): string {
  return Uint8Array.fromHex(hex).toBase64();
}

function hexOfBase64(text: string): string | undefined {
  try {
    const bytes = Uint8Array.fromBase64(text);
    return bytes.length === 16 ? bytes.toHex() : undefined;
  } catch {
    return undefined;
  }
}

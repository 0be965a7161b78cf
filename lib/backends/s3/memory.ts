/**
 * {@link ObjectMemory}: what an S3 replica knows of the objects it wrote or
 * examined, so that an unchanged object needs no request beyond its folder's
 * listing. A listing gives each object's size, ETag and last-modified time
 * but none of its metadata (mtime, mode, MD5 of a multipart upload); while
 * those three are what was seen when the object was written or examined, what
 * was learnt then still holds. Kept in the state file, never in the bucket.
 *
 * @module
 */
import { RememberedBase } from "../../state/state.ts";

/** What is known of one object. */
export interface Known {
  /** Its ETag, without quotes. */
  readonly etag: string;
  /** Its last-modified time (epoch ms); NaN until a listing shows it (a
   * PUT's answer does not say it). */
  readonly lastModified: number;
  /** Its size in bytes. */
  readonly size: number;
  /** The mtime its metadata records (epoch ms). */
  readonly mtimeMs: number;
  /** The permission bits its metadata records. */
  readonly mode: number;
  /** Its content's MD5 (hex), when known. */
  readonly md5?: string;
  /** A symlink's target (the object's content). */
  readonly target?: string;
}

/** Bumped when the serialized form changes (another one is dropped: learnt again). */
const VERSION = 1;

/**
 * Object path (`dir/name`, `dir/link.rclonelink`, `dir/sub/` for a folder's
 * marker, `""` for the root's) -> what is known of it, grouped by folder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectMemory } from "./memory.ts";
 * const memory = new ObjectMemory();
 * memory.set("d/a", { etag: "e", lastModified: NaN, size: 1, mtimeMs: 5, mode: 0o644 });
 * assert.equal(memory.match("d/a", { etag: "e", lastModified: 7, size: 1 })?.mtimeMs, 5);
 * const again = new ObjectMemory();
 * again.load(memory.toBytes());
 * assert.equal(again.get("d/a")?.lastModified, 7); // adopted from the listing
 * // Replaced by someone else: forgotten.
 * assert.equal(again.match("d/a", { etag: "f", lastModified: 8, size: 1 }), undefined);
 * assert.equal(again.get("d/a"), undefined);
 * ```
 */
export class ObjectMemory extends RememberedBase {
  readonly #folders = new Map<string, Map<string, Known>>();
  /**
   * What is known of the object at `path`.
   *
   * @param path an object path (see the class documentation).
   * @returns what is known, or undefined.
   */
  get(path: string): Known | undefined {
    const [dir, name] = split(path);
    return this.#folders.get(dir)?.get(name);
  }

  /**
   * What is known of the object at `path` when it is still the object listed
   * now (same size and ETag, and the same last-modified time where one was
   * seen; one first seen now is adopted). Anything else is forgotten.
   *
   * @param path an object path.
   * @param listed the object as a listing shows it.
   * @returns what is known, or undefined when nothing is (or no longer is).
   */
  match(
    path: string,
    listed: { readonly etag: string; readonly lastModified: number; readonly size: number },
  ): Known | undefined {
    const known = this.get(path);
    if (known === undefined) return undefined;
    if (
      known.etag !== listed.etag || known.size !== listed.size ||
      (!Number.isNaN(known.lastModified) && known.lastModified !== listed.lastModified)
    ) {
      this.forget(path);
      return undefined;
    }
    if (Number.isNaN(known.lastModified) && !Number.isNaN(listed.lastModified)) {
      const adopted = { ...known, lastModified: listed.lastModified };
      this.set(path, adopted);
      return adopted;
    }
    return known;
  }

  /**
   * Remember `known` for the object at `path`.
   *
   * @param path an object path.
   * @param known what is known of it now.
   */
  set(path: string, known: Known): void {
    const [dir, name] = split(path);
    let folder = this.#folders.get(dir);
    if (folder === undefined) this.#folders.set(dir, folder = new Map());
    folder.set(name, known);
    this.touched();
  }

  /**
   * Forget the object at `path`.
   *
   * @param path an object path.
   */
  forget(path: string): void {
    const [dir, name] = split(path);
    const folder = this.#folders.get(dir);
    if (folder?.delete(name)) this.touched();
  }

  /**
   * Forget the folder `dir`: its marker and everything below it.
   *
   * @param dir a folder path (not the root).
   */
  forgetFolder(dir: string): void {
    this.forget(`${dir}/`);
    for (const folder of [...this.#folders.keys()]) {
      if (folder === dir || folder.startsWith(`${dir}/`)) {
        this.#folders.delete(folder);
        this.touched();
      }
    }
  }

  /**
   * A listing of the folder `dir` showed exactly the object names `names`
   * (folder markers as `sub/`): forget the others in it.
   *
   * @param dir a folder path (`""`: the root).
   * @param names the object names listed in it.
   */
  listed(dir: string, names: ReadonlySet<string>): void {
    const folder = this.#folders.get(dir);
    if (folder === undefined) return;
    for (const name of [...folder.keys()]) {
      if (name === "" || names.has(name)) continue;
      // A folder gone (its marker, `sub/`): what was known below it goes too.
      if (name.endsWith("/")) {
        this.forgetFolder(dir === "" ? name.slice(0, -1) : `${dir}/${name.slice(0, -1)}`);
      }
      folder.delete(name);
      this.touched();
    }
  }

  /** How many objects are known. */
  get size(): number {
    let count = 0;
    for (const folder of this.#folders.values()) count += folder.size;
    return count;
  }

  /**
   * The memory as bytes (for the state file).
   *
   * @returns JSON text, UTF-8.
   */
  override toBytes(): Uint8Array {
    const folders: unknown[] = [];
    for (const [dir, known] of this.#folders) {
      if (known.size === 0) continue;
      const rows = [...known].map(([name, k]) => [
        name,
        k.etag,
        Number.isNaN(k.lastModified) ? null : k.lastModified,
        k.size,
        k.mtimeMs,
        k.mode,
        k.md5 ?? null,
        k.target ?? null,
      ]);
      folders.push([dir, rows]);
    }
    return new TextEncoder().encode(JSON.stringify({ version: VERSION, folders }));
  }

  /**
   * Replace what is known by what `bytes` (from {@link toBytes}) hold;
   * anything unreadable leaves the memory empty (it is learnt again).
   *
   * @param bytes what {@link toBytes} made.
   */
  override load(bytes: Uint8Array): void {
    this.#folders.clear();
    try {
      const data = JSON.parse(new TextDecoder().decode(bytes));
      if (data.version !== VERSION || !Array.isArray(data.folders)) return;
      for (const [dir, rows] of data.folders as [string, unknown[][]][]) {
        const folder = new Map<string, Known>();
        for (const [name, etag, lastModified, size, mtimeMs, mode, md5, target] of rows) {
          folder.set(String(name), {
            etag: String(etag),
            lastModified: typeof lastModified === "number" ? lastModified : NaN,
            size: Number(size),
            mtimeMs: Number(mtimeMs),
            mode: Number(mode),
            ...(typeof md5 === "string" ? { md5 } : {}),
            ...(typeof target === "string" ? { target } : {}),
          });
        }
        this.#folders.set(String(dir), folder);
      }
    } catch {
      this.#folders.clear();
    }
    this.saved();
  }
}

/** An object path's folder and name (a marker `a/b/`: folder `a`, name `b/`). */
function split(path: string): [string, string] {
  const end = path.endsWith("/") ? path.length - 1 : path.length;
  const at = path.lastIndexOf("/", end - 1);
  return at < 0 ? ["", path] : [path.slice(0, at), path.slice(at + 1)];
}

/**
 * {@link S3Backups}: `--backup-dir s3://SAME-BUCKET/PREFIX` for a replica in
 * a bucket. A bucket renames nothing: an entry is kept by server-side copies
 * (CopyObject, the bytes never leave the store) under
 * `PREFIX/<cycle folder>/<path>`, laid out as the replica is (rclone's
 * symlink objects and folder markers); a deletion is the copy, then the
 * caller's removal. A copy that fails leaves the entry where it was, and no
 * part of itself.
 *
 * @module
 */
import { backupPathOf } from "../../core/backup_names.ts";
import type { Kind } from "../../core/entry.ts";
import type { Backups, Kept } from "../../core/replica.ts";
import { LINK_SUFFIX } from "./layout.ts";
import type { S3Store } from "./store.ts";

/** Where an {@link S3Backups} is, and what it shares with its replica. */
export interface S3BackupsOptions {
  /** The bucket, without a prefix (tree paths are keys). */
  readonly bucket: S3Store;
  /** The replica's key prefix (`""`: the whole bucket). */
  readonly replicaPrefix: string;
  /** The backup folder's key prefix. */
  readonly prefix: string;
  /** How messages name it (`s3://bucket/prefix`). */
  readonly where: string;
  /** The largest object copied in one request, and the part size of bigger ones. */
  readonly copy?: { readonly limit?: number; readonly partSize?: number };
}

/** A backup folder in the replica's bucket; see the module documentation. */
export class S3Backups implements Backups {
  readonly where: string;
  readonly #options: S3BackupsOptions;

  /** @param options see {@link S3BackupsOptions}. */
  constructor(options: S3BackupsOptions) {
    this.where = options.where;
    this.#options = options;
  }

  /** The key of the replica's `path`. */
  #replicaKey(path: string): string {
    const prefix = this.#options.replicaPrefix;
    return prefix === "" ? path : `${prefix}/${path}`;
  }

  /** The key of `path` below the backup folder. */
  #backupKey(path: string): string {
    return `${this.#options.prefix}/${path}`;
  }

  /** What the objects at `key` hold: a file, a symlink, a folder, or nothing. */
  async #kindAt(key: string): Promise<Kind | undefined> {
    const bucket = this.#options.bucket;
    if (await bucket.head(key) !== undefined) return "file";
    if (await bucket.head(key + LINK_SUFFIX) !== undefined) return "symlink";
    return (await bucket.objectsUnder(key)).length > 0 ? "dir" : undefined;
  }

  async keep(
    path: string,
    how: "move" | "copy",
    folder: string,
    kind?: Kind,
  ): Promise<Kept | undefined> {
    const { bucket, copy } = this.#options;
    const found = kind ?? await this.#kindAt(this.#replicaKey(path));
    if (found === undefined || found === "other") return undefined;
    const from = this.#replicaKey(path);
    // The objects that hold the entry: a file's, a symlink's, or a folder's all (its marker too).
    let objects: { from: string; rest: string; size: number }[];
    if (found === "dir") {
      objects = (await bucket.objectsUnder(from)).map((object) => ({
        from: object.path,
        rest: object.path.slice(from.length),
        size: object.size,
      }));
    } else {
      const suffix = found === "symlink" ? LINK_SUFFIX : "";
      const head = await bucket.head(from + suffix);
      objects = head === undefined ? [] : [{ from: from + suffix, rest: suffix, size: head.size }];
    }
    if (objects.length === 0) return undefined;
    // A bucket has folders only as names: only the entry's own name can be taken.
    const name = await backupPathOf(
      `${folder}/${path}`,
      async (at, last) =>
        last && await this.#kindAt(this.#backupKey(at)) !== undefined ? "other" : undefined,
    );
    const to = this.#backupKey(name);
    const made: string[] = [];
    try {
      for (const object of objects) {
        await bucket.copy(object.from, to + object.rest, object.size, copy ?? {});
        made.push(to + object.rest);
      }
    } catch (error) {
      await bucket.deleteMany(made).catch(() => {}); // no part of it is left
      throw error;
    }
    // A bucket renames nothing: the caller removes the entry.
    return how === "move" ? { name, copied: true } : { name };
  }

  async discard(name: string): Promise<void> {
    const bucket = this.#options.bucket, key = this.#backupKey(name);
    const paths = [key, key + LINK_SUFFIX, ...await bucket.pathsUnder(key)];
    const failed = await bucket.deleteMany(paths);
    if (failed.length > 0) throw failed[0]!.error;
  }

  async folders(): Promise<string[]> {
    return [...(await this.#options.bucket.list(this.#options.prefix)).folders];
  }

  async drop(name: string): Promise<void> {
    const bucket = this.#options.bucket;
    const paths = await bucket.pathsUnder(this.#backupKey(name));
    const failed = await bucket.deleteMany(paths);
    if (failed.length > 0) throw failed[0]!.error;
  }
}

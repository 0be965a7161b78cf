/**
 * {@link LocalBackups}: `--backup-dir` for a local replica, a folder on
 * this machine. A deletion is a rename into the cycle folder (on another
 * file system: a copy, then the removal); before an overwrite the old file
 * gets a second name there (a hard link; else a copy), so that the new one
 * is renamed over its path and readers never find the path missing.
 *
 * @module
 */
import { cpSync } from "node:fs";
import { backupNameOf } from "../../core/backup_names.ts";
import type { Backups } from "../../core/replica.ts";
import { joinPath, parentOf } from "../../core/paths.ts";
import type { Disk } from "./disk.ts";

/** Whether `error` says the two paths are on different file systems (or cannot be linked). */
function cannotLink(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === "EXDEV" || code === "EPERM" || code === "EMLINK" || code === "ENOTSUP";
}

/**
 * A copy of the entry at `from` made at `to` (folders whole, symlinks as
 * symlinks, times kept); one that fails part way (a full disk) is removed.
 */
function copyEntry(disk: Disk, from: string, to: string): void {
  try {
    cpSync(from, to, {
      recursive: true,
      preserveTimestamps: true,
      verbatimSymlinks: true,
      errorOnExist: true,
      force: false,
    });
  } catch (error) {
    try {
      disk.remove(to, true);
    } catch {
      // nothing was made
    }
    throw error;
  }
}

/**
 * A local backup folder; see the module documentation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalBackups } from "./backups.ts";
 * import { realDisk } from "./disk.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.mkdirSync(`${dir}/rep/d`, { recursive: true });
 * Deno.writeTextFileSync(`${dir}/rep/d/a.txt`, "old");
 * const backups = new LocalBackups(`${dir}/bak`, "bak", realDisk, (path) => `${dir}/rep/${path}`);
 * assert.equal(await backups.keep("d/a.txt", "copy", "F"), "F/d/a.txt");
 * assert.equal(await backups.keep("d/a.txt", "move", "F"), "F/d/a.txt.~1~");
 * assert.equal(Deno.readTextFileSync(`${dir}/bak/F/d/a.txt.~1~`), "old");
 * assert.deepEqual(await backups.folders(), ["F"]);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class LocalBackups implements Backups {
  readonly where: string;
  readonly #root: string;
  readonly #disk: Disk;
  readonly #replicaPath: (path: string) => string;

  /**
   * @param root the backup folder's absolute path.
   * @param where how messages name it.
   * @param disk the disk calls changes go through.
   * @param replicaPath the absolute path of a replica entry (checked not to lead through a symlink).
   */
  constructor(root: string, where: string, disk: Disk, replicaPath: (path: string) => string) {
    this.#root = root;
    this.where = where;
    this.#disk = disk;
    this.#replicaPath = replicaPath;
  }

  #exists(path: string): boolean {
    try {
      this.#disk.lstat(path);
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  }

  async keep(path: string, how: "move" | "copy", folder: string): Promise<string | undefined> {
    const from = this.#replicaPath(path);
    let info: Deno.FileInfo;
    try {
      info = this.#disk.lstat(from);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    const name = await backupNameOf(
      `${folder}/${path}`,
      (at) => this.#exists(joinPath(this.#root, at)),
    );
    const to = joinPath(this.#root, name);
    this.#disk.mkdir(parentOf(to), true);
    if (how === "move") {
      try {
        this.#disk.rename(from, to);
      } catch (error) {
        if (!cannotLink(error)) throw error;
        copyEntry(this.#disk, from, to);
        this.#disk.remove(from, info.isDirectory);
      }
    } else if (info.isFile) {
      try {
        this.#disk.link(from, to);
      } catch (error) {
        if (!cannotLink(error)) throw error;
        copyEntry(this.#disk, from, to);
      }
    } else copyEntry(this.#disk, from, to);
    return name;
  }

  folders(): Promise<string[]> {
    try {
      return Promise.resolve([...Deno.readDirSync(this.#root)].map((entry) => entry.name));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return Promise.resolve([]);
      return Promise.reject(error);
    }
  }

  drop(name: string): Promise<void> {
    try {
      this.#disk.remove(joinPath(this.#root, name), true);
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

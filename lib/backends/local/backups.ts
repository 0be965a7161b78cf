/**
 * {@link LocalBackups}: `--backup-dir` for a local replica, a folder on
 * this machine. A deletion is a rename into the cycle folder (on another
 * file system: a copy, and the caller removes the entry); before an
 * overwrite the old file gets a second name there (a hard link; else a
 * copy), so that the new one is renamed over its path and readers never find
 * the path missing. Nothing is left behind by a backup that fails: no part
 * of a copy, no folder it made.
 *
 * @module
 */
import { backupPathOf } from "../../core/backup_names.ts";
import type { Backups, Kept } from "../../core/replica.ts";
import { joinPath, parentOf } from "../../core/paths.ts";
import type { Disk } from "./disk.ts";

/** The error's code (`EXDEV`, …), where it has one. */
function codeOf(error: unknown): string | undefined {
  return (error as { code?: string }).code;
}

/** A hard link cannot be made there (another file system, or not allowed): a copy then. */
function cannotLink(error: unknown): boolean {
  return ["EXDEV", "EPERM", "EMLINK", "ENOTSUP"].includes(codeOf(error) ?? "");
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
 * assert.deepEqual(await backups.keep("d/a.txt", "copy", "F"), { name: "F/d/a.txt" });
 * assert.deepEqual(await backups.keep("d/a.txt", "move", "F"), { name: "F/d/a.txt.~1~" });
 * assert.equal(Deno.readTextFileSync(`${dir}/bak/F/d/a.txt.~1~`), "old");
 * await backups.discard("F/d/a.txt");
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

  /** What is at `path` below the backup folder: a real folder, anything else, or nothing. */
  #kindAt(path: string): "dir" | "other" | undefined {
    try {
      return this.#disk.lstat(joinPath(this.#root, path)).isDirectory ? "dir" : "other";
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  }

  async keep(path: string, how: "move" | "copy", folder: string): Promise<Kept | undefined> {
    const from = this.#replicaPath(path);
    let info: Deno.FileInfo;
    try {
      info = this.#disk.lstat(from);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    const name = await backupPathOf(`${folder}/${path}`, (at) => this.#kindAt(at));
    const to = joinPath(this.#root, name);
    try {
      this.#disk.mkdir(parentOf(to), true);
      if (how === "move") {
        try {
          this.#disk.rename(from, to);
          return { name };
        } catch (error) {
          // Another file system: a copy; the caller removes the entry.
          if (codeOf(error) !== "EXDEV") throw error;
          await this.#copy(from, to);
          return { name, copied: true };
        }
      }
      if (info.isFile) {
        try {
          this.#disk.link(from, to);
          return { name };
        } catch (error) {
          if (!cannotLink(error)) throw error;
        }
      }
      await this.#copy(from, to);
      return { name };
    } catch (error) {
      // Nothing of it is left: no part of a copy, no folder made for it.
      this.#removeQuietly(to);
      this.#removeEmptyFolders(parentOf(to));
      throw error;
    }
  }

  /** A copy of the entry at `from` made at `to` (folders whole, symlinks as symlinks, times kept). */
  async #copy(from: string, to: string): Promise<void> {
    // node:fs is loaded when first needed (it costs every start of the program otherwise).
    const { cpSync } = await import("node:fs");
    cpSync(from, to, {
      recursive: true,
      preserveTimestamps: true,
      verbatimSymlinks: true,
      errorOnExist: true,
      force: false,
    });
  }

  discard(name: string): Promise<void> {
    const at = joinPath(this.#root, name);
    try {
      this.#disk.remove(at, true);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) return Promise.reject(error);
    }
    this.#removeEmptyFolders(parentOf(at));
    return Promise.resolve();
  }

  #removeQuietly(path: string): void {
    try {
      this.#disk.remove(path, true);
    } catch {
      // nothing was made there
    }
  }

  /** Remove `dir` and the folders above it, up to the backup folder, while they are empty. */
  #removeEmptyFolders(dir: string): void {
    for (let at = dir; at.startsWith(`${this.#root}/`); at = parentOf(at)) {
      try {
        this.#disk.remove(at, false);
      } catch {
        return; // not empty (or gone)
      }
    }
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

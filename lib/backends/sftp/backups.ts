/**
 * {@link SftpBackups}: `--backup-dir` for an SSH replica, a folder on the
 * same host. A deletion is a rename into the cycle folder (on another file
 * system of the host: `cp -pPR` where a shell is allowed, and the caller
 * removes the entry); before an overwrite the old file gets a second name
 * there (`hardlink@openssh.com`; else `cp -pP`), so that the new one is
 * renamed over its path and readers never find the path missing. Nothing is
 * left behind by a backup that fails.
 *
 * @module
 */
import { backupPathOf } from "../../core/backup_names.ts";
import { asError } from "../../core/error.ts";
import { joinPath, parentOf } from "../../core/paths.ts";
import type { Backups, Kept } from "../../core/replica.ts";
import type { SshLink } from "./connect.ts";
import { isMissing, makeFolders, removeTree, sftpError, shellQuote } from "./upload.ts";

/** Where an {@link SftpBackups} is, and what it shares with its replica. */
export interface SftpBackupsOptions {
  /** The connection (the replica's). */
  readonly link: () => Promise<SshLink>;
  /** The backup folder's absolute path on the host. */
  readonly root: string;
  /** How messages name it. */
  readonly where: string;
  /** A shell may run commands there (`cp`, `mkdir`, `rm`). */
  readonly exec: boolean;
  /** The absolute path of a replica entry. */
  readonly replicaPath: (path: string) => string;
  /** The replica entry `path` left the replica (what is known of it goes). */
  readonly gone: (path: string) => void;
}

/** A backup folder on the replica's host; see the module documentation. */
export class SftpBackups implements Backups {
  readonly where: string;
  readonly #options: SftpBackupsOptions;

  /** @param options see {@link SftpBackupsOptions}. */
  constructor(options: SftpBackupsOptions) {
    this.where = options.where;
    this.#options = options;
  }

  async keep(path: string, how: "move" | "copy", folder: string): Promise<Kept | undefined> {
    const link = await this.#options.link();
    const from = this.#options.replicaPath(path);
    const mode = await this.#lstat(link, from);
    if (mode === undefined) return undefined;
    const root = this.#options.root;
    const name = await backupPathOf(`${folder}/${path}`, async (at) => {
      const there = await this.#lstat(link, joinPath(root, at));
      return there === undefined ? undefined : (there & 0o170000) === 0o040000 ? "dir" : "other";
    });
    const to = joinPath(root, name);
    try {
      await makeFolders(link, parentOf(to));
      if (how === "move") {
        try {
          await link.call((done) => link.sftp.rename(from, to, done));
          this.#options.gone(path);
          return { name };
        } catch (error) {
          // Another file system of the host: a copy; the caller removes the entry.
          await this.#run(link, error, `cp -pPR -- "$1" "$2"`, from, to);
          return { name, copied: true };
        }
      }
      if ((mode & 0o170000) === 0o120000) {
        const target = await link.call<string>((done) => link.sftp.readlink(from, done));
        await link.call((done) => link.sftp.symlink(target, to, done));
      } else {
        try {
          await link.call((done) => link.sftp.ext_openssh_hardlink(from, to, done));
        } catch (error) {
          await this.#run(link, error, `cp -pP -- "$1" "$2"`, from, to);
        }
      }
      return { name };
    } catch (error) {
      // Nothing of it is left: no part of a copy, no folder made for it.
      await removeTree(link, to).catch(() => {});
      await this.#removeEmptyFolders(link, parentOf(to));
      throw error;
    }
  }

  async discard(name: string): Promise<void> {
    const link = await this.#options.link();
    const at = joinPath(this.#options.root, name);
    await removeTree(link, at);
    await this.#removeEmptyFolders(link, parentOf(at));
  }

  /** Remove `dir` and the folders above it, up to the backup folder, while they are empty. */
  async #removeEmptyFolders(link: SshLink, dir: string): Promise<void> {
    const root = this.#options.root;
    for (let at = dir; at.startsWith(`${root}/`); at = parentOf(at)) {
      try {
        await link.call((done) => link.sftp.rmdir(at, done));
      } catch {
        return; // not empty (or gone)
      }
    }
  }

  /** The entry's mode bits, or undefined when nothing is there. */
  async #lstat(link: SshLink, abs: string): Promise<number | undefined> {
    try {
      const attrs = await link.call<{ mode: number }>((done) => link.sftp.lstat(abs, done));
      return attrs.mode;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw sftpError(error, "cannot examine", abs);
    }
  }

  /** What SFTP could not do (`failed`), done by `script` on the host with `from` and `to`. */
  async #run(
    link: SshLink,
    failed: unknown,
    script: string,
    from: string,
    to: string,
  ): Promise<void> {
    if (!this.#options.exec) throw sftpError(failed, "cannot back up", from);
    const result = await link.exec(
      `sh -c ${shellQuote(script)} sh ${shellQuote(from)} ${shellQuote(to)}`,
    );
    if (result.code !== 0) {
      throw new Error(
        `cannot back up '${from}': ${
          result.stderr.trim().split("\n")[0] || asError(failed).message
        }`,
      );
    }
  }

  async folders(): Promise<string[]> {
    const link = await this.#options.link();
    try {
      const list = await link.call<{ filename: string }[]>((done) =>
        link.sftp.readdir(this.#options.root, done)
      );
      return list.map((entry) => entry.filename).filter((name) => name !== "." && name !== "..");
    } catch (error) {
      if (isMissing(error)) return [];
      throw sftpError(error, "cannot list", this.#options.root);
    }
  }

  async drop(name: string): Promise<void> {
    const link = await this.#options.link();
    const abs = joinPath(this.#options.root, name);
    if (this.#options.exec) {
      const result = await link.exec(`rm -rf -- ${shellQuote(abs)}`);
      if (result.code === 0) return;
      throw new Error(`cannot remove '${abs}': ${result.stderr.trim().split("\n")[0]}`);
    }
    await removeTree(link, abs);
  }
}

/**
 * The upload of one file to an SSH host ({@link uploadFile}), shared by the
 * replica (small files, side by side on its connection) and the upload
 * workers (big files, each worker with a connection of its own, so that the
 * cipher runs on more than one core); and the folder requests the replica
 * and its backups share ({@link makeFolders}, {@link removeTree}).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { asError } from "../../core/error.ts";
import { parentOf } from "../../core/paths.ts";
import type { Rate } from "../../core/rate.ts";
import type { FileWrite, WriteResult } from "../../core/replica.ts";
import { checkSource, notCopied, openSource } from "../../core/source.ts";
import type { SshLink } from "./connect.ts";

/** Bytes of one write or read request (what OpenSSH takes at most, 255 KiB). */
export const CHUNK = 255 * 1024;
/** Requests of one file in flight at once (2 MiB; OpenSSH's sftp: 64 of 32 KiB). */
export const IN_FLIGHT = 8;
/** Files up to this size are read from the source at once. */
const SMALL = 1 << 20;
/** SFTP status codes (RFC draft 02, section 7). */
const NO_SUCH_FILE = 2, PERMISSION_DENIED = 3, FAILURE = 4;

/** An error of a request, as the engine understands it (gone, denied), with the path. */
export function sftpError(error: unknown, what: string, path: string): Error {
  const found = asError(error);
  const code = (found as { code?: unknown }).code;
  const message = `${what} '${path}': ${found.message}`;
  if (code === NO_SUCH_FILE) return new Deno.errors.NotFound(message);
  if (code === PERMISSION_DENIED) return new Deno.errors.PermissionDenied(message);
  return new Error(message);
}

/** Whether a request failed because the entry is not there. */
export function isMissing(error: unknown): boolean {
  return (error as { code?: unknown }).code === NO_SUCH_FILE ||
    error instanceof Deno.errors.NotFound;
}

/** A failure, with the reason OpenSSH does not send: a full disk. */
export async function explained(
  link: SshLink,
  error: unknown,
  what: string,
  abs: string,
): Promise<Error> {
  if ((error as { code?: unknown }).code === FAILURE) {
    const space = await link.call<{ f_bavail: number; f_favail: number }>((done) =>
      link.sftp.ext_openssh_statvfs(parentOf(abs) || "/", done)
    ).catch(() => undefined);
    if (space !== undefined && (space.f_bavail === 0 || space.f_favail === 0)) {
      return new Error(`${what} '${abs}': no space left on the replica's disk`);
    }
  }
  return sftpError(error, what, abs);
}

/**
 * Write one file on the host, atomically: the source read (and checked to be
 * the file listed, before and after), its bytes sent to `temp` with many
 * requests in flight, mode and whole-second mtime set on the handle, then
 * renamed over `abs` with `posix-rename@openssh.com`. The temp file is
 * removed when anything fails.
 *
 * @param link the connection.
 * @param write the file to write.
 * @param abs its path on the host.
 * @param temp the temp path beside it.
 * @param signal stops the write early.
 * @param rate `--bwlimit`: each request's bytes are taken from it before it is sent.
 * @returns how the write ended (it does not throw).
 */
export async function uploadFile(
  link: SshLink,
  write: FileWrite,
  abs: string,
  temp: string,
  signal?: AbortSignal,
  rate?: Rate,
): Promise<WriteResult> {
  // One of the connection's SFTP sessions for all of this file's requests (a handle is a session's).
  const sftp = link.session();
  let handle: Buffer | undefined;
  let source: Deno.FsFile | undefined;
  let placed = false;
  try {
    // The source first: nothing is made on the host for a file that changed or vanished.
    let bytes: Uint8Array | undefined;
    if (write.size <= SMALL) {
      const before = checkSource(write.from, write.expectedKey);
      if (before !== "same") return notCopied(before);
      bytes = Deno.readFileSync(write.from);
      if (bytes.length !== write.size) return notCopied("changed");
    } else {
      const opened = await openSource(write.from, write.expectedKey);
      if (!(opened instanceof Deno.FsFile)) return opened;
      source = opened;
    }
    try {
      handle = await link.call<Buffer>((done) =>
        sftp.open(temp, "wx", { mode: write.mode & 0o777 | 0o600 }, done)
      );
    } catch (error) {
      throw await explained(link, error, "cannot write", temp);
    }
    const hash = createHash("md5");
    const pending: Promise<void>[] = [];
    const send = (chunk: Uint8Array, position: number) => {
      const buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      const request = link.call((done) =>
        sftp.write(handle!, buffer, 0, buffer.length, position, done)
      );
      request.catch(() => {}); // awaited below; a failure then is the one reported
      pending.push(request);
    };
    if (bytes !== undefined) {
      hash.update(bytes);
      try {
        for (let at = 0; at < bytes.length; at += CHUNK) {
          const chunk = bytes.subarray(at, at + CHUNK);
          if (rate) await rate.take(chunk.length, signal);
          send(chunk, at);
        }
      } catch (error) {
        await Promise.allSettled(pending);
        throw error; // stopped while waiting for the rate
      }
    } else {
      let position = 0;
      // Buffers in turn: one is read into again only once its request was
      // answered (at most IN_FLIGHT are waited for), so no chunk is allocated.
      const buffers = Array.from({ length: IN_FLIGHT + 1 }, () => new Uint8Array(CHUNK));
      try {
        for (let turn = 0;; turn++) {
          signal?.throwIfAborted();
          const chunk = buffers[turn % buffers.length]!;
          const got = await source!.read(chunk);
          if (got === null) break;
          const part = chunk.subarray(0, got);
          hash.update(part);
          if (rate) await rate.take(got, signal);
          send(part, position);
          position += got;
          // Requests in flight, not the whole file in memory.
          while (pending.length >= IN_FLIGHT) await pending.shift();
        }
      } catch (error) {
        await Promise.allSettled(pending);
        if (signal?.aborted) throw error;
        throw await explained(link, error, "cannot write", temp);
      }
      if (position !== write.size) {
        await Promise.allSettled(pending);
        return notCopied("changed");
      }
    }
    const seconds = Math.floor(write.mtimeMs / 1000);
    pending.push(
      link.call((done) =>
        sftp.fsetstat(handle!, { mode: write.mode, atime: seconds, mtime: seconds }, done)
      ),
    );
    // The close goes with them (the host answers in order): the rename waits for all three.
    const closing = handle;
    handle = undefined;
    pending.push(link.call((done) => sftp.close(closing, done)));
    try {
      for (const request of pending) await request;
    } catch (error) {
      await Promise.allSettled(pending);
      throw await explained(link, error, "cannot write", temp);
    }
    // The source as listed, still: else what was sent may be another file's bytes.
    const after = checkSource(write.from, write.expectedKey);
    if (after !== "same") return notCopied(after);
    signal?.throwIfAborted();
    try {
      await link.call((done) => sftp.ext_openssh_rename(temp, abs, done));
    } catch (error) {
      throw sftpError(error, "cannot put in place", abs);
    }
    placed = true;
    return {
      status: "done",
      key: [write.size, seconds * 1000, 0, 0],
      md5: hash.digest("hex"),
    };
  } catch (error) {
    if (signal?.aborted) return { status: "skipped", reason: "the run was stopped" };
    if (error instanceof Deno.errors.NotFound && !`${error.message}`.includes(temp)) {
      return notCopied("gone");
    }
    const { name, message } = asError(error);
    return { status: "failed", name, message };
  } finally {
    source?.close();
    // A temp left behind (a failure, a stop): removed now, else swept next cycle.
    if (handle !== undefined) {
      await link.call((done) => sftp.close(handle!, done)).catch(() => {});
    }
    if (!placed) await link.call((done) => sftp.unlink(temp, done)).catch(() => {});
  }
}

/** Quote `text` for the remote shell. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * Make the folder `abs` on the host with the folders above it (`mkdir -p`,
 * request by request).
 *
 * @param link the connection.
 * @param abs the folder's absolute path.
 */
export async function makeFolders(link: SshLink, abs: string): Promise<void> {
  const parts = abs.split("/");
  for (let i = 2; i <= parts.length; i++) {
    const path = parts.slice(0, i).join("/");
    if (path === "") continue;
    try {
      await link.call((done) => link.sftp.mkdir(path, { mode: 0o755 }, done));
    } catch (error) {
      const exists = await link.call<unknown>((done) => link.sftp.stat(path, done)).then(
        () => true,
        () => false,
      );
      if (!exists) throw sftpError(error, "cannot make", path);
    }
  }
}

/**
 * Remove the entry `abs` on the host, a folder with all it holds, request by
 * request (no shell); a folder replaced by a symlink since it was listed
 * loses the link, never what it points to. Gone already is fine.
 *
 * @param link the connection.
 * @param abs the entry's absolute path.
 */
export async function removeTree(link: SshLink, abs: string): Promise<void> {
  const self = await link.call<{ mode: number }>((done) => link.sftp.lstat(abs, done))
    .catch((error) => {
      if (isMissing(error)) return undefined;
      throw sftpError(error, "cannot examine", abs);
    });
  if (self === undefined) return;
  if ((self.mode & 0o170000) !== 0o040000) {
    await link.call((done) => link.sftp.unlink(abs, done)).catch((error) => {
      if (!isMissing(error)) throw sftpError(error, "cannot remove", abs);
    });
    return;
  }
  let list: { filename: string; attrs: { mode: number } }[];
  try {
    list = await link.call((done) => link.sftp.readdir(abs, done));
  } catch (error) {
    if (isMissing(error)) return;
    throw sftpError(error, "cannot list", abs);
  }
  await Promise.all(list.map(async ({ filename, attrs }) => {
    if (filename === "." || filename === "..") return;
    const child = `${abs}/${filename}`;
    if ((attrs.mode & 0o170000) === 0o040000) return await removeTree(link, child);
    try {
      await link.call((done) => link.sftp.unlink(child, done));
    } catch (error) {
      if (!isMissing(error)) throw sftpError(error, "cannot remove", child);
    }
  }));
  try {
    await link.call((done) => link.sftp.rmdir(abs, done));
  } catch (error) {
    if (!isMissing(error)) throw sftpError(error, "cannot remove", abs);
  }
}

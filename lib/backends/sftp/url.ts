/**
 * Where an SSH replica is: `sftp://USER@HOST[:PORT]/PATH` (a path from the
 * root; `/~/PATH` from the login folder, as curl reads it), or the scp form
 * `USER@HOST:PATH` (a path from the login folder unless it starts with `/`).
 * A value is remote when a colon comes before its first slash (rsync's rule:
 * `./a:b` is a local folder).
 *
 * @module
 */

/** The host and folder of an SSH replica. */
export interface SftpLocation {
  /** The login user. */
  readonly user: string;
  /** The host name or address (an IPv6 address without brackets). */
  readonly host: string;
  /** The port (22 unless given). */
  readonly port: number;
  /** The folder: absolute, or relative to the login folder (`""`: that folder). */
  readonly path: string;
}

/** Whether `replica` names a replica of the SFTP backend. */
export function claimsSftp(replica: string): boolean {
  if (/^sftp:\/\//i.test(replica)) return true;
  // The scp form: no scheme, a colon before the first slash.
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(replica)) return false;
  const colon = replica.indexOf(":"), slash = replica.indexOf("/");
  return colon > 0 && (slash < 0 || colon < slash) && replica.includes("@");
}

/**
 * The location of `sftp://…` or `USER@HOST:PATH`.
 *
 * @param replica `--replica` as given.
 * @returns where it is.
 * @throws {Error} a one-line reason when it is not one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSftp } from "./url.ts";
 * assert.deepEqual(parseSftp("sftp://ann@backup:2222/srv/copy"),
 *   { user: "ann", host: "backup", port: 2222, path: "/srv/copy" });
 * assert.deepEqual(parseSftp("sftp://ann@backup/~/copy"),
 *   { user: "ann", host: "backup", port: 22, path: "copy" });
 * assert.deepEqual(parseSftp("ann@[::1]:copy"), { user: "ann", host: "::1", port: 22, path: "copy" });
 * assert.throws(() => parseSftp("sftp://backup/x"), /user/);
 * ```
 */
export function parseSftp(replica: string): SftpLocation {
  let user: string, host: string, port = 22, path: string;
  if (/^sftp:\/\//i.test(replica)) {
    let url: URL;
    try {
      url = new URL(`sftp://${replica.slice("sftp://".length)}`);
    } catch {
      throw new Error(`'${replica}' is not an sftp://USER@HOST[:PORT]/PATH URL`);
    }
    user = decodeURIComponent(url.username);
    host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    if (url.port !== "") port = Number(url.port);
    if (url.password !== "") {
      throw new Error("a password in the URL is not taken: use a key (--ssh-key)");
    }
    path = decodeURIComponent(url.pathname);
    if (path === "/~" || path.startsWith("/~/")) path = path.slice(3);
  } else {
    const at = replica.indexOf("@");
    user = replica.slice(0, at);
    const rest = replica.slice(at + 1);
    const end = rest.startsWith("[") ? rest.indexOf("]") + 1 : 0;
    const colon = rest.indexOf(":", end);
    host = rest.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
    path = rest.slice(colon + 1);
  }
  if (user === "") throw new Error(`'${replica}' names no user: write USER@HOST`);
  if (host === "") throw new Error(`'${replica}' names no host`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`'${replica}' has no valid port`);
  }
  if (/^\/+$/.test(path)) path = "/";
  else path = path.replace(/\/+$/, "");
  if (path.split("/").some((part) => part === "." || part === "..")) {
    throw new Error(`the path '${path}' has a '.' or '..' part`);
  }
  return { user, host, port, path: path.replace(/\/{2,}/g, "/") };
}

/** How `ssh` and `known_hosts` name the host: `host`, or `[host]:port` off port 22. */
export function hostPattern(location: Pick<SftpLocation, "host" | "port">): string {
  return location.port === 22 ? location.host : `[${location.host}]:${location.port}`;
}

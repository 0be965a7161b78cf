/**
 * The SSH backend: `--replica sftp://USER@HOST[:PORT]/PATH` or the scp form
 * `USER@HOST:PATH`, with its flags. Its modules (`session.ts`, `ssh2`) are
 * loaded only when a replica is on an SSH host (and resolved only then).
 *
 * @module
 */
import type { Backend } from "../../engine/backend.ts";
import { claimsSftp, parseSftp } from "./url.ts";

/** The SSH backend; see the module documentation. */
export const sftpBackend: Backend = {
  name: "sftp",
  form: "sftp://USER@HOST[:PORT]/PATH or USER@HOST:PATH",
  claims: claimsSftp,
  flags: {
    sshKey: {
      brief: "private key to log in with (default: ~/.ssh/id_ed25519, id_ecdsa or id_rsa, " +
        "with --allow-env=HOME)",
      placeholder: "path",
      path: true,
    },
    sshKnownHosts: {
      brief: "known_hosts file the host key is checked against (default: ~/.ssh/known_hosts)",
      placeholder: "path",
      path: true,
    },
    sshNoExec: {
      brief: "run no command on the host (no find, md5sum): the quick check (size and mtime), " +
        "MD5s read back",
      placeholder: "",
      toggle: true,
    },
  },
  noWatch: "an SSH host sends no events here",
  refusal(replica) {
    try {
      parseSftp(replica);
      return undefined;
    } catch (error) {
      return `--replica: ${(error as Error).message}.`;
    }
  },
  async open(replica, flags, run) {
    // Not a literal: Deno would resolve ssh2 (and warn about its build
    // scripts) for every run, even of a local replica. `deno compile` is told
    // to include it (`--include`).
    const session = "./session.ts";
    const { openSftp } = await import(session) as typeof import("./session.ts");
    return await openSftp(replica, flags, run);
  },
};

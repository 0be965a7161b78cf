/**
 * Every backend the program knows, in the order they are asked whether a
 * `--replica` value is theirs (the local folder last: it takes what is no
 * other's). A new backend is its folder and one line here.
 *
 * @module
 */
import type { Backend } from "../engine/backend.ts";
import { localBackend } from "./local/backend.ts";
import { s3Backend } from "./s3/backend.ts";
import { sftpBackend } from "./sftp/backend.ts";

/** The backends, in the order they claim a replica. */
export const BACKENDS: readonly Backend[] = [
  s3Backend,
  sftpBackend,
  localBackend,
];

/**
 * The backend of a `--replica` value.
 *
 * @param replica `--replica` as given.
 * @returns the first backend that claims it, or undefined.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backendOf } from "./registry.ts";
 * assert.equal(backendOf("s3://bucket/prefix")?.name, "s3");
 * assert.equal(backendOf("./a:b")?.name, "local");
 * ```
 */
export function backendOf(replica: string): Backend | undefined {
  return BACKENDS.find((backend) => backend.claims(replica));
}

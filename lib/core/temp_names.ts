/**
 * The program's own file names in the replica: temp files and folders, named
 * `.mirror.tmp.` + the run id (16 hex digits) + `.` + a counter, e.g.
 * `.mirror.tmp.3f9c0a7b12d4e856.1a`. A name is the program's only when its
 * run id is one the state file recorded (before that run made its first temp
 * file); any other name, `.mirror.tmp.notes.txt` included, is an ordinary
 * entry and is mirrored.
 *
 * @module
 */

/** What every temp name starts with. */
export const TEMP_PREFIX = ".mirror.tmp.";
const TEMP_NAME = /^\.mirror\.tmp\.([0-9a-f]{16})\./;

/** A new random run id: 16 hex digits. */
export function newRunId(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(8)),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
}

/** The run id a temp name carries, or undefined for any other name. */
export function runIdOf(name: string): string | undefined {
  // Asked of every replica name each cycle: most do not start with a dot.
  if (name.charCodeAt(0) !== 46) return undefined;
  return TEMP_NAME.exec(name)?.[1];
}

/**
 * Hands out one run's temp names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runIdOf, TempNames } from "./temp_names.ts";
 * const names = new TempNames("0123456789abcdef");
 * const name = names.next();
 * assert.equal(name, ".mirror.tmp.0123456789abcdef.0");
 * assert.ok(names.isOwn(name) && runIdOf(name) === "0123456789abcdef");
 * assert.ok(!names.isOwn(".mirror.tmp.notes.txt"));
 * ```
 */
export class TempNames {
  readonly #prefix: string;
  #next = 0;

  /**
   * The temp names of one run.
   *
   * @param runId the run's id (see {@link newRunId}), carried by every name.
   */
  constructor(runId: string) {
    this.#prefix = `${TEMP_PREFIX}${runId}.`;
  }

  /**
   * A new temp name.
   *
   * @returns a name (not a path) this run has not handed out before.
   */
  next(): string {
    return `${this.#prefix}${(this.#next++).toString(36)}`;
  }

  /**
   * Whether `name` is one of this run's temp names.
   *
   * @param name an entry's name (not a path).
   * @returns true when `name` carries this run's id.
   */
  isOwn(name: string): boolean {
    return name.startsWith(this.#prefix);
  }

  /**
   * Whether `path` is one of this run's temp names or lies in one (a new
   * folder being filled).
   *
   * @param path an entry path (relative, `/`-separated).
   * @returns true when `path` or a folder above it is one of this run's temp names.
   */
  holds(path: string): boolean {
    return path.startsWith(this.#prefix) || path.includes(`/${this.#prefix}`);
  }
}

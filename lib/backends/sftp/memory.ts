/**
 * {@link InodeMemory}: what an SSH replica knows of the files it wrote, so
 * that the stat key it gives them (size, mtime) is the one its writes
 * returned, while their inode and ctime (from `find`, where a shell is
 * allowed) still show any change made behind the program's back. A file the
 * program writes is *pending*; the first listing that finds it adopts its
 * inode and ctime; from then on, a listing that finds another inode or ctime
 * makes the file's key another one, and the engine compares it by content.
 * Kept in the state file, never on the host.
 *
 * @module
 */
import { RememberedBase } from "../../state/state.ts";
import { textPrint } from "../../core/text.ts";

/** Bumped when the serialized form changes (another one is dropped: learnt again). */
const VERSION = 1;
/** A file written, not yet listed. */
const PENDING = "";

/**
 * File path -> its adopted `inode:ctime` (or pending), per folder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InodeMemory } from "./memory.ts";
 * const memory = new InodeMemory();
 * memory.wrote("d/a");
 * assert.equal(memory.identity("d/a", "7:1.5"), 0); // adopted
 * assert.equal(memory.identity("d/a", "7:1.5"), 0);
 * assert.notEqual(memory.identity("d/a", "7:2.5"), 0); // changed behind its back
 * assert.notEqual(memory.identity("d/b", "8:1.5"), 0); // never written
 * ```
 */
export class InodeMemory extends RememberedBase {
  readonly #known = new Map<string, string>();
  /**
   * The program wrote the file at `path` (or changed its attributes): the
   * next listing adopts what it finds.
   */
  wrote(path: string): void {
    if (this.#known.get(path) === PENDING) return;
    this.#known.set(path, PENDING);
    this.touched();
  }

  /**
   * The number that stands for the file's inode in its stat key: 0 while it
   * is the file the program wrote, else a print of `found`.
   *
   * @param path the file's path.
   * @param found its `inode:ctime` as listed now.
   * @returns 0, or a print of `found` (never 0).
   */
  identity(path: string, found: string): number {
    const known = this.#known.get(path);
    if (known === found) return 0;
    if (known === PENDING) {
      this.#known.set(path, found);
      this.touched();
      return 0;
    }
    if (known !== undefined) this.forget(path);
    return textPrint(found);
  }

  /** Forget the file at `path`. */
  forget(path: string): void {
    if (this.#known.delete(path)) this.touched();
  }

  /** Forget everything at `dir` and below it. */
  forgetFolder(dir: string): void {
    for (const path of this.#known.keys()) {
      if (path.startsWith(`${dir}/`)) this.forget(path);
    }
  }

  /** What is known of `from` is now of `to` (a rename). */
  move(from: string, to: string): void {
    for (const [path, known] of [...this.#known]) {
      if (path !== from && !path.startsWith(`${from}/`)) continue;
      this.#known.delete(path);
      this.#known.set(to + path.slice(from.length), known);
      this.touched();
    }
  }

  /** Its bytes, to save. */
  override toBytes(): Uint8Array {
    return new TextEncoder().encode(
      JSON.stringify({ version: VERSION, known: [...this.#known] }),
    );
  }

  /** Replace what it holds by what was saved (unreadable: empty, learnt again). */
  override load(bytes: Uint8Array): void {
    this.#known.clear();
    try {
      const data = JSON.parse(new TextDecoder().decode(bytes));
      if (data.version !== VERSION || !Array.isArray(data.known)) return;
      for (const [path, known] of data.known) this.#known.set(String(path), String(known));
    } catch {
      // learnt again
    }
  }
}

/**
 * `--exclude-from FILE`: files of exclude rules in .gitignore syntax, read at
 * start (a file that cannot be used refuses the run) and read again before a
 * cycle when one of them changed (a file that cannot be used then is one
 * WARNING; its previous rules stay in force).
 *
 * A change is seen by a stat of each file per cycle: its size, mtime, ctime
 * and inode (an editor that saves by renaming a new file into place changes
 * the inode). No file is watched.
 *
 * @module
 */
import { entryFromInfo, statKey } from "../core/entry.ts";
import { asError, reason } from "../core/error.ts";

/** What a file's stat must keep for its text to be trusted unread (see `statKey`). */
type StatKey = string;

/** Where {@link ExcludeFiles} reports what it read again. */
export interface ExcludeFilesLog {
  info(message: string, properties: Record<string, unknown>): void;
  warn(message: string, properties: Record<string, unknown>): void;
}

/** One file: its text in force, and what is known of it. */
interface Loaded {
  readonly path: string;
  text: string;
  /** The stat key at the last read, or at the last failed one. */
  key: StatKey;
  /** Why the last read failed (said once until it changes). */
  problem: string | undefined;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

function keyOf(info: Deno.FileInfo): StatKey {
  return statKey(entryFromInfo(info));
}

/**
 * The text of the file at `path`, and the stat key it was read under.
 *
 * @throws {Error} with a message that fits in parentheses, when it cannot be
 * used: missing, unreadable, not a regular file (a FIFO is never opened: the
 * read would block), not UTF-8 text or holding a NUL byte (a binary file).
 */
function read(path: string): { text: string; key: StatKey } {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
    if (!info.isFile) throw new Error("not a regular file");
  } catch (error) {
    throw new Error(reason(asError(error)));
  }
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch (error) {
    throw new Error(reason(asError(error)));
  }
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw new Error("not UTF-8 text");
  }
  if (text.includes("\0")) throw new Error("a binary file: it holds a NUL byte");
  return { text, key: keyOf(info) };
}

/**
 * The `--exclude-from` files of a run, in the order given.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ExcludeFiles } from "./exclude_from.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/rules`, "# build output\n*.o\n");
 * const files = ExcludeFiles.load([`${dir}/rules`]);
 * assert.ok(files instanceof ExcludeFiles);
 * const log = { info: () => {}, warn: () => {} };
 * const texts = files.current(log);
 * assert.deepEqual(texts, ["# build output\n*.o\n"]);
 * assert.equal(files.current(log), texts); // unchanged: the same array
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class ExcludeFiles {
  readonly #files: readonly Loaded[];
  #texts: readonly string[];

  private constructor(files: readonly Loaded[]) {
    this.#files = files;
    this.#texts = Object.freeze(files.map((file) => file.text));
  }

  /**
   * Read every file.
   *
   * @param paths the files, as given (a relative path is relative to the
   * working folder).
   * @returns the files, or one line naming the first that cannot be used.
   */
  static load(paths: readonly string[]): ExcludeFiles | string {
    const files: Loaded[] = [];
    for (const path of paths) {
      try {
        files.push({ path, ...read(path), problem: undefined });
      } catch (error) {
        return `--exclude-from: cannot use '${path}': ${asError(error).message}.`;
      }
    }
    return new ExcludeFiles(files);
  }

  /** The files' texts in force, in order, as last read (nothing is read). */
  get texts(): readonly string[] {
    return this.#texts;
  }

  /**
   * The files' texts in force now, in order: a file whose stat changed is
   * read again (an INFO line says its rules apply from now on); one that
   * cannot be used keeps its previous text, with a WARNING (once, until the
   * reason changes).
   *
   * @param log where those lines go.
   * @returns the texts; the same array as last time while none changed.
   */
  current(log: ExcludeFilesLog): readonly string[] {
    let changed = false;
    for (const file of this.#files) {
      let key: StatKey | undefined;
      try {
        key = keyOf(Deno.statSync(file.path));
      } catch {
        // read() says why
      }
      // Unchanged since it was last read (or last failed to be): nothing to do.
      if (key !== undefined && key === file.key) continue;
      try {
        const { text, key } = read(file.path);
        file.key = key;
        const wasFailing = file.problem !== undefined;
        file.problem = undefined;
        if (text === file.text && !wasFailing) continue;
        if (text !== file.text) changed = true;
        file.text = text;
        log.info("Exclude file {path} was read again; its rules apply from this cycle on.", {
          action: "exclude",
          path: file.path,
        });
      } catch (error) {
        const why = asError(error).message;
        file.key = key ?? "";
        if (why === file.problem) continue;
        file.problem = why;
        log.warn(
          "Exclude file {path} cannot be used ({reason}); its previous rules stay in force.",
          { action: "exclude", path: file.path, reason: why },
        );
      }
    }
    if (changed) this.#texts = Object.freeze(this.#files.map((file) => file.text));
    return this.#texts;
  }
}

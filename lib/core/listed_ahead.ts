/**
 * {@link ListedAhead}: the folder listings a remote replica asks for ahead of
 * the walk (which lists folders depth-first, subfolders in name order), at
 * most so many at once, so that the walk finds them answered.
 *
 * @module
 */
import { compareNames } from "./paths.ts";

/**
 * Listings under way or done, by folder path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ListedAhead } from "./listed_ahead.ts";
 * const ahead = new ListedAhead<string>(2);
 * ahead.ask("", ["b", "a", "c"], (dir) => Promise.resolve(`listing of ${dir}`));
 * assert.equal(await ahead.take("a"), "listing of a");
 * assert.equal(ahead.take("c"), undefined); // no room for it
 * ahead.skip(["b"]);
 * assert.equal(ahead.take("b"), undefined);
 * ```
 */
export class ListedAhead<T> {
  readonly #ahead = new Map<string, Promise<T>>();
  readonly #limit: number;

  /** @param limit listings held at most. */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /**
   * The listing of `dir` asked for ahead, taken out (the next walk asks anew).
   *
   * @param dir the folder's path.
   * @returns its listing, or undefined when it was not asked for.
   */
  take(dir: string): Promise<T> | undefined {
    const listing = this.#ahead.get(dir);
    this.#ahead.delete(dir);
    return listing;
  }

  /**
   * Ask for the listings of the subfolders `names` of `dir`, in name order,
   * while there is room.
   *
   * @param dir the folder listed.
   * @param names its subfolders' names.
   * @param list how to list a folder.
   */
  ask(dir: string, names: readonly string[], list: (path: string) => Promise<T>): void {
    for (const name of [...names].sort(compareNames)) {
      if (this.#ahead.size >= this.#limit) return;
      const path = dir === "" ? name : `${dir}/${name}`;
      if (this.#ahead.has(path)) continue;
      const listing = list(path);
      listing.catch(() => {}); // a failure surfaces when the walk lists the folder
      this.#ahead.set(path, listing);
    }
  }

  /**
   * The walk will not list `dirs` (nor what is below them): their listings are dropped.
   *
   * @param dirs folder paths.
   */
  skip(dirs: readonly string[]): void {
    for (const dir of dirs) {
      for (const path of [...this.#ahead.keys()]) {
        if (path === dir || path.startsWith(`${dir}/`)) this.#ahead.delete(path);
      }
    }
  }

  /** Drop every listing. */
  clear(): void {
    this.#ahead.clear();
  }
}

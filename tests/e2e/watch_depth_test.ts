/**
 * `--watch` at any depth (#19): a file created, changed or removed one to
 * four folders deep reaches the replica within moments, long before the
 * next full cycle, and its folder's attributes (mtime) with it.
 */
import assert from "node:assert/strict";
import { mirrorDiff, mirrored, startLoop, waitFor, withWork, writeFile } from "../helpers.ts";

// With a 600 s interval, only the watcher can mirror a change within seconds.
const SOON = 3_000;

Deno.test("watch: creates, changes and removals one to four folders deep are mirrored within moments", async () => {
  await withWork(async (work) => {
    const dirs = ["a", "a/b", "a/b/c", "a/b/c/d"];
    for (const dir of dirs) writeFile(`${work}/src/${dir}/old.txt`, `old in ${dir}`);
    const loop = startLoop(work, "600", "--watch");
    try {
      await waitFor("the first cycle", mirrored(work), 10_000);
      await new Promise((resolve) => setTimeout(resolve, 200));
      for (const dir of dirs) {
        for (
          const [what, change] of [
            ["a new file", () => writeFile(`${work}/src/${dir}/new.txt`, "new")],
            ["a changed file", () => writeFile(`${work}/src/${dir}/old.txt`, `changed ${dir}!`)],
            ["a removed file", () => Deno.removeSync(`${work}/src/${dir}/new.txt`)],
          ] as const
        ) {
          change();
          try {
            await waitFor(`${what} in ${dir}`, mirrored(work), SOON);
          } catch (error) {
            throw new Error(
              `${(error as Error).message}:\n${
                mirrorDiff(`${work}/src`, `${work}/rep`).join("\n")
              }`,
            );
          }
        }
      }
    } finally {
      assert.equal((await loop.stop()).code, 0);
    }
  });
});

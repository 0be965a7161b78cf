/** The randomized `--watch` test (see `tests/watch_fuzz.ts`), a few dozen cases. */
import assert from "node:assert/strict";
import { fuzzWatch, runScenario } from "../watch_fuzz.ts";

Deno.test({
  name: "watch: random creates, edits, removals and renames at random depths converge (fast-check)",
  sanitizeOps: false, // the event worker's own timers
  sanitizeResources: false,
  fn: () => fuzzWatch(30),
});

Deno.test({
  name:
    "watch: a new name in a new folder of a file just written elsewhere is linked to it (a case the randomized test found)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // The new folder is filled under a temp name: its file was not at its path yet when the
    // other name was to be linked to it, and was copied instead.
    const diff = await runScenario({
      before: [{ op: "mkdir", path: "c" }],
      during: [
        { op: "write", path: "c/a", text: "one file, two names" },
        { op: "link", from: "c/a", to: "b/b" },
      ],
    });
    assert.equal(diff, undefined, diff);
  },
});

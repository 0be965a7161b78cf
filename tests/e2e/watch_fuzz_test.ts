/** The randomized `--watch` test (see `tests/watch_fuzz.ts`), a few dozen cases. */
import { fuzzWatch } from "../watch_fuzz.ts";

Deno.test({
  name: "watch: random creates, edits, removals and renames at random depths converge (fast-check)",
  sanitizeOps: false, // the event worker's own timers
  sanitizeResources: false,
  fn: () => fuzzWatch(30),
});

import assert from "node:assert/strict";
import type { Entry } from "../../lib/core/entry.ts";
import { OWN_WRITE_MS, WatchMode } from "../../lib/engine/watch.ts";
import { waitFor } from "../helpers.ts";

const file: Entry = { kind: "file", size: 1, mtimeMs: 1, ctimeMs: 0, ino: 7, mode: 0o644 };

Deno.test("watch: an own write that cannot be examined a second later counts as changed, no crash", async () => {
  const dir = Deno.realPathSync(Deno.makeTempDirSync());
  let examinable = true;
  const distrusted: string[] = [];
  const mode = new WatchMode({
    roots: () => ({ source: dir, replica: dir }),
    stat: () => {
      if (examinable) return file;
      throw new Deno.errors.NotADirectory("x is a file now");
    },
    distrust: (paths) => void distrusted.push(...paths),
    isOwnTemp: () => false,
    onFailure: () => {},
  });
  try {
    mode.writing(["x/y"]);
    mode.written(["x/y"]);
    examinable = false; // someone replaced the folder x by a file
    mode.replicaEvents(["x/y"]);
    assert.equal(mode.hints.size, 0, "the mirror's own write, for now");
    await waitFor("the delayed look", () => mode.hints.size > 0, 5 * OWN_WRITE_MS);
    assert.deepEqual([...mode.hints.take()], ["x/y"]);
    assert.deepEqual(distrusted, ["x/y"]);
  } finally {
    mode.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

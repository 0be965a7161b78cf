import assert from "node:assert/strict";
import {
  assertMirrored,
  editKeepingMtime,
  listTree,
  logLines,
  mirrored,
  runOnce,
  startLoop,
  waitFor,
  withWork,
} from "./helpers.ts";

// With a 60 s interval, only the watcher can mirror a change within seconds.
const SOON = 3_000;

Deno.test("watch: changes are mirrored within moments, between full cycles", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`, rep = `${work}/rep`;
    Deno.writeTextFileSync(`${src}/old.txt`, "old");
    Deno.writeTextFileSync(`${src}/same.txt`, "1234");
    const loop = startLoop(work, "60", "--watch");
    try {
      await waitFor("first cycle", mirrored(work));
      const steps: [string, () => void][] = [
        ["a new file", () => Deno.writeTextFileSync(`${src}/new.txt`, "new")],
        ["an edit", () => Deno.writeTextFileSync(`${src}/old.txt`, "changed")],
        ["a same-size edit, mtime restored", () => editKeepingMtime(`${src}/same.txt`, "5678")],
        ["a removal", () => Deno.removeSync(`${src}/new.txt`)],
        ["nested new folders", () => {
          Deno.mkdirSync(`${src}/a/b/c`, { recursive: true });
          Deno.writeTextFileSync(`${src}/a/b/c/deep.txt`, "deep");
        }],
        ["a folder moved in", () => {
          Deno.mkdirSync(`${work}/elsewhere/inner`, { recursive: true });
          Deno.writeTextFileSync(`${work}/elsewhere/inner/x.txt`, "x");
          Deno.renameSync(`${work}/elsewhere`, `${src}/moved`);
        }],
        ["a folder removed", () => Deno.removeSync(`${src}/a`, { recursive: true })],
        ["a file replaced by a folder", () => {
          Deno.removeSync(`${src}/old.txt`);
          Deno.mkdirSync(`${src}/old.txt`);
        }],
        ["a symlink", () => Deno.symlinkSync("moved", `${src}/link`)],
      ];
      for (const [what, change] of steps) {
        change();
        await waitFor(what, mirrored(work), SOON);
      }
    } finally {
      assert.equal((await loop.stop()).code, 0);
    }
    assertMirrored(src, rep);
    // The watcher's partial cycles log the same lines as full cycles.
    const messages = logLines(`${work}/log.txt`).map((line) => line.split("]: ")[1]);
    for (
      const expected of [
        "File new.txt has been copied.",
        "File old.txt has been updated.",
        "File same.txt has been updated.",
        "File new.txt has been removed.",
        "Folder a/b/c has been created.",
        "Folder moved/inner has been created.",
        "Folder a has been removed.",
        "Symlink link has been created.",
      ]
    ) assert.ok(messages.includes(expected), `missing "${expected}"`);
    assert.ok(messages.some((m) => m?.startsWith("Cycle finished: ")));
  });
});

Deno.test("watch: a burst of 5,000 files (events dropped) converges by the next full cycle", async () => {
  await withWork(async (work) => {
    const loop = startLoop(work, "2", "--watch");
    try {
      await waitFor("first cycle", () => listTree(`${work}`).has("rep"));
      for (let d = 0; d < 50; d++) {
        Deno.mkdirSync(`${work}/src/d${d}`);
        for (let f = 0; f < 100; f++) {
          Deno.writeTextFileSync(`${work}/src/d${d}/f${f}`, `${d}/${f}`);
        }
      }
      await waitFor("convergence", mirrored(work), 20_000, 200);
    } finally {
      assert.equal((await loop.stop()).code, 0);
    }
    assert.equal(listTree(`${work}/rep`).size, 5_050);
  });
});

Deno.test("watch: --watch with --once is refused", async () => {
  await withWork(async (work) => {
    const result = await runOnce(work, "--watch");
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--watch and --once cannot be combined/);
  });
});

import assert from "node:assert/strict";
import { OWN_WRITE_MS, WatchMode } from "../../lib/engine/watch.ts";
import type { EventBatch } from "../../lib/engine/watch_events.ts";
import {
  assertMirrored,
  editKeepingMtime,
  listTree,
  logHas,
  logLines,
  mirrored,
  runMirror,
  runOnce,
  startLoop,
  startLoopUnder,
  waitFor,
  withoutRootOverrides,
  withWork,
  writeFile,
} from "../helpers.ts";
import { watchingMirror } from "../watching.ts";

// With a 60 s interval, only the watcher can mirror a change within seconds.
const SOON = 3_000;

/** Make each change in turn; after each, the replica must mirror the source within {@link SOON}. */
async function mirroredAfterEach(work: string, steps: [string, () => void][]): Promise<void> {
  for (const [what, change] of steps) {
    change();
    await waitFor(what, mirrored(work), SOON);
  }
}

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
      await mirroredAfterEach(work, steps);
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
      await waitFor("first cycle", () => Deno.statSync(`${work}/rep`).isDirectory);
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

Deno.test("watch: edits made in the replica are reverted within moments", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`, rep = `${work}/rep`;
    Deno.writeTextFileSync(`${src}/keep.txt`, "original");
    Deno.writeTextFileSync(`${src}/gone.txt`, "deleted in the replica");
    Deno.mkdirSync(`${src}/dir`);
    Deno.writeTextFileSync(`${src}/dir/inner.txt`, "inner");
    const loop = startLoop(work, "60", "--watch");
    try {
      // The replica is watched from the end of the cycle that created it.
      await waitFor("first cycle", logHas(work, /Cycle finished/));
      // The first step waits out the first cycle's own-write window: a same-size
      // edit with the mtime restored, right after the mirror's own write, is
      // left to the next full cycle. The later steps come right after the
      // mirror's writes of the step before, so their own-write checks run too.
      await new Promise((resolve) => setTimeout(resolve, OWN_WRITE_MS + 200));
      const steps: [string, () => void][] = [
        ["a same-size edit, mtime restored", () => editKeepingMtime(`${rep}/keep.txt`, "ORIGINAL")],
        ["a deleted file", () => Deno.removeSync(`${rep}/gone.txt`)],
        ["a stray file", () => Deno.writeTextFileSync(`${rep}/stray.txt`, "stray")],
        ["a stray folder", () => {
          Deno.mkdirSync(`${rep}/stray/deeper`, { recursive: true });
          Deno.writeTextFileSync(`${rep}/stray/deeper/x`, "x");
        }],
        ["a deleted folder", () => Deno.removeSync(`${rep}/dir`, { recursive: true })],
        ["a changed mode", () => Deno.chmodSync(`${rep}/keep.txt`, 0o600)],
      ];
      await mirroredAfterEach(work, steps);
    } finally {
      assert.equal((await loop.stop()).code, 0);
    }
    assertMirrored(src, rep);
  });
});

Deno.test("watch: events of the mirror's own writes in the replica are told from others'", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`, rep = `${work}/rep`;
    for (let i = 0; i < 20; i++) writeFile(`${src}/d${i % 3}/f${i}`, `file ${i}`);
    writeFile(`${src}/big`, "x".repeat(2 << 20)); // copied in the background
    Deno.mkdirSync(rep);
    writeFile(`${rep}/extra/old`, "removed by the cycle");
    const { mirror, mode } = watchingMirror(work);
    const hinted = new Set<string>();
    const collect = () => {
      for (const path of mode.hints.take()) hinted.add(path);
      return hinted;
    };
    mode.ensure();
    try {
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal((await mirror.cycle()).failed, 0);
      assertMirrored(src, rep);
      await new Promise((resolve) => setTimeout(resolve, OWN_WRITE_MS + 300)); // every event, and the window
      assert.deepEqual([...collect()], [], "the cycle's own writes are not someone else's");
      // Right after a cycle's writes (in its window): changes without a content write.
      writeFile(`${src}/d0/f0`, "changed in the source");
      await mirror.cycle();
      Deno.chmodSync(`${rep}/d0/f0`, 0o600); // someone else's change of mode
      Deno.mkdirSync(`${rep}/extra`); // the folder the cycle removed is back
      await waitFor("the changes, once the window is over", () => {
        const paths = collect();
        return paths.has("d0/f0") && paths.has("extra");
      });
      Deno.writeTextFileSync(`${rep}/someone-else`, "!");
      await waitFor("someone else's write", () => collect().has("someone-else"));
    } finally {
      mode.close();
    }
  });
});

Deno.test("watch: a source folder removed and made again is watched again", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/first.txt`, "first");
    // Full cycles 3 s apart: one finds the source back and watches it again; a
    // change made just after it is mirrored long before the next one could.
    const loop = startLoop(work, "3", "--watch");
    try {
      await waitFor("first cycle", mirrored(work));
      Deno.renameSync(`${work}/src`, `${work}/away`);
      await waitFor("a cycle without it", logHas(work, /\[ERROR\]: Source folder/));
      Deno.renameSync(`${work}/away`, `${work}/src`);
      writeFile(`${work}/src/second.txt`, "second");
      await waitFor("the next full cycle", mirrored(work));
      await new Promise((resolve) => setTimeout(resolve, 300)); // its end, and the new watch
      writeFile(`${work}/src/third.txt`, "third");
      await waitFor("the watcher", mirrored(work), 1_000);
    } finally {
      assert.equal((await loop.stop()).code, 0);
    }
  });
});

Deno.test("watch: folders that cannot be watched are tried again when listed; reported once a root", () => {
  const failures: string[] = [], asked: string[][] = [];
  let report: (batch: EventBatch) => void = () => {};
  const mode = new WatchMode({
    roots: () => ({ source: "/source", replica: "/replica" }),
    stat: () => undefined,
    distrust: () => {},
    isOwnTemp: () => false,
    onFailure: (root, error) => failures.push(`${root}: ${error.message}`),
    events: (onBatch) => {
      report = onBatch;
      return { watch: (folders) => asked.push([...folders]), close: () => {} };
    },
  });
  const dir = (ino: number) => ({
    kind: "dir" as const,
    size: 0,
    mtimeMs: 0,
    ctimeMs: 0,
    ino,
    mode: 0o755,
  });
  mode.ensure(); // the roots, at once
  mode.folder("source", "", dir(1));
  mode.folder("replica", "", dir(2));
  mode.folder("replica", "a", dir(3));
  mode.ensure();
  assert.deepEqual(asked, [["/source", "/replica"], ["/source", "/replica", "/replica/a"]]);
  // Listed again, unchanged: not asked again.
  mode.folder("replica", "a", dir(3));
  mode.ensure();
  assert.equal(asked.length, 2);
  // The limit reached: said once for the root; the folder is asked for again when listed.
  for (let i = 0; i < 2; i++) {
    report({
      paths: [],
      written: [],
      lost: false,
      failed: { paths: ["/replica/a"], error: "limit" },
    });
    mode.folder("replica", "a", dir(3));
    mode.ensure();
  }
  assert.deepEqual(failures, ["/replica: limit"]);
  assert.deepEqual(asked.slice(2), [["/replica/a"], ["/replica/a"]]);
  // Made again (another inode): watched again.
  mode.folder("source", "", dir(9));
  mode.ensure();
  assert.deepEqual(asked.at(-1), ["/source"]);
  mode.close();
});

/** {@link watchingMirror} of one settled file, `f` (its copy is recorded). */
async function watchingMirrorOfOneFile(work: string) {
  writeFile(`${work}/src/f`, "source bytes");
  await new Promise((resolve) => setTimeout(resolve, 1100)); // settled: its copy is recorded
  return { rep: `${work}/rep`, ...watchingMirror(work) };
}

Deno.test("watch: someone else's write event on a replica file forces a content comparison", async () => {
  await withWork(async (work) => {
    const { rep, mirror, mode } = await watchingMirrorOfOneFile(work);
    // An edit in the second of the mirror's own write, same size, mtime put back:
    // the stat key does not change (Deno's ctime has whole seconds).
    let kept = false;
    for (let attempt = 0; attempt < 5 && !kept; attempt++) {
      if (attempt > 0) Deno.removeSync(`${rep}/f`);
      await mirror.cycle();
      const key = () => {
        const info = Deno.lstatSync(`${rep}/f`);
        return [info.size, info.mtime?.getTime(), info.ctime?.getTime(), info.ino].join();
      };
      const before = key();
      editKeepingMtime(`${rep}/f`, "edited bytes");
      kept = key() === before;
    }
    assert.ok(kept, "could not make a same-second edit");
    await mirror.partialCycle(new Set(["f"]));
    assert.equal(Deno.readTextFileSync(`${rep}/f`), "edited bytes", "the key is trusted: the gap");
    // The same edit, reported by the watcher as someone else's once the mirror's window is over.
    await new Promise((resolve) => setTimeout(resolve, OWN_WRITE_MS + 50));
    mode.replicaEvents(["f"]);
    assert.deepEqual([...mode.hints.take()], ["f"]);
    await mirror.partialCycle(new Set(["f"]));
    assert.equal(Deno.readTextFileSync(`${rep}/f`), "source bytes");
  });
});

Deno.test("watch: an in-place write right after the mirror's own write is someone else's", async () => {
  await withWork(async (work) => {
    const { rep, mirror, mode } = await watchingMirrorOfOneFile(work);
    Deno.mkdirSync(rep);
    mode.ensure();
    try {
      await new Promise((resolve) => setTimeout(resolve, 50));
      await mirror.cycle();
      await new Promise((resolve) => setTimeout(resolve, 100)); // the cycle's own events
      assert.equal(mode.hints.size, 0, "the mirror's own copy is its own");
      editKeepingMtime(`${rep}/f`, "edited bytes"); // inside the mirror's one-second window
      await waitFor("the edit reported as someone else's", () => mode.hints.size > 0);
      await mirror.partialCycle(mode.hints.take());
      assert.equal(Deno.readTextFileSync(`${rep}/f`), "source bytes");
    } finally {
      mode.close();
    }
  });
});

/** The messages (after "]: ") of the log lines written since line `from`. */
function messagesFrom(work: string, from: number): string[] {
  return logLines(`${work}/log.txt`).slice(from).map((line) => line.slice(line.indexOf("]: ") + 3));
}

Deno.test("watch: a file appended to every 50 ms logs at most one line per change mirrored", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/f.log`, "start\n");
    const loop = startLoop(work, "60", "--watch");
    try {
      await waitFor("first cycle", logHas(work, /Cycle finished/));
      const mark = logLines(`${work}/log.txt`).length;
      for (let i = 0; i < 10; i++) {
        Deno.writeTextFileSync(`${work}/src/f.log`, `line ${i}\n`, { append: true });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await waitFor("the last append", mirrored(work), SOON);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const lines = messagesFrom(work, mark);
      assert.ok(lines.length >= 1 && lines.length <= 10, lines.join("\n"));
      assert.ok(lines.every((line) => line === "File f.log has been updated."), lines.join("\n"));
    } finally {
      assert.equal((await loop.stop()).code, 0);
    }
  });
});

Deno.test("watch: an excluded folder made in the source never appears in the replica", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    const loop = startLoop(work, "60", "--watch", "--exclude", "node_modules/");
    try {
      await waitFor("first cycle", logHas(work, /Cycle finished/));
      Deno.mkdirSync(`${work}/src/node_modules/pkg`, { recursive: true });
      writeFile(`${work}/src/node_modules/pkg/index.js`, "x");
      writeFile(`${work}/src/b.txt`, "b"); // a change the watcher does mirror
      await waitFor("b.txt", logHas(work, "File b.txt has been copied."), SOON);
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.ok(!listTree(`${work}/rep`).has("node_modules"));
      assert.doesNotMatch(Deno.readTextFileSync(`${work}/log.txt`), /node_modules|ERROR/);
    } finally {
      assert.equal((await loop.stop()).code, 0);
    }
  });
});

Deno.test({
  name: "watch: a source folder that cannot be read deletes nothing below it in the replica",
  ignore: withoutRootOverrides() === undefined, // needs setpriv (util-linux) to drop root's override
  fn: async () => {
    await withWork(async (work) => {
      writeFile(`${work}/src/p/d/x.txt`, "x");
      const loop = startLoopUnder(withoutRootOverrides(), work, "60", "--watch");
      try {
        await waitFor("first cycle", logHas(work, /Cycle finished/));
        await new Promise((resolve) => setTimeout(resolve, 300));
        Deno.writeTextFileSync(`${work}/src/p/d/x.txt`, "changed"); // an event below p
        Deno.chmodSync(`${work}/src/p`, 0o600); // p can no longer be searched
        await waitFor("the error", logHas(work, /\[ERROR\]: Could not read source path p/), SOON);
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.equal(Deno.readTextFileSync(`${work}/rep/p/d/x.txt`), "x", "nothing was deleted");
        assert.doesNotMatch(Deno.readTextFileSync(`${work}/log.txt`), /has been removed/);
      } finally {
        Deno.chmodSync(`${work}/src/p`, 0o755);
        await loop.stop();
      }
    });
  },
});

Deno.test("watch: a replica given as a symlink that is switched is written (and locked) where it points now", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    Deno.mkdirSync(`${work}/repA`);
    Deno.mkdirSync(`${work}/repB`);
    Deno.symlinkSync("repA", `${work}/rep`);
    const loop = startLoop(work, "0.2");
    try {
      await waitFor("repA", () => listTree(`${work}/repA`).has("a.txt"));
      Deno.removeSync(`${work}/rep`);
      Deno.symlinkSync("repB", `${work}/rep`);
      await waitFor("repB", () => listTree(`${work}/repB`).has("a.txt"));
      // The new target is locked by the running mirror: another one is refused.
      const other = await runMirror(
        ["--source", "src", "--replica", "repB", "--log-file", "other.log", "--once"],
        work,
      );
      assert.equal(other.code, 2, other.stderr);
      assert.match(other.stderr, /is being written by another running mirror/);
    } finally {
      assert.equal((await loop.stop()).code, 0);
    }
  });
});

Deno.test("watch: a partial cycle for a removed folder and its file keeps the excluded entries, removes the rest", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/d/a`, "a");
    writeFile(`${work}/rep/d/x.tmp`, "excluded");
    const { mirror } = watchingMirror(work, { exclude: ["*.tmp"] });
    await mirror.cycle();
    Deno.removeSync(`${work}/src/d`, { recursive: true });
    // The events of `rm -rf src/d` name the file and the folder, both gone now.
    const tally = await mirror.partialCycle(new Set(["d/a", "d"]));
    assert.equal(tally.failed, 0);
    assert.deepEqual([...listTree(`${work}/rep`).keys()].sort(), ["d", "d/x.tmp"]);
  });
});

/**
 * `--watch` that never misses (#19): events drained on a worker, each folder
 * watched on its own (symlinks never followed), a possible loss of events
 * answered by a full cycle once they settle, a file left behind looked at
 * again within a second or two.
 */
import assert from "node:assert/strict";
import { type Disk, realDisk } from "../../lib/backends/local/disk.ts";
import {
  type EventSourceFactory,
  MAX_WATCHERS,
  workerEvents,
} from "../../lib/engine/watch_events.ts";
import { watchingLoop } from "../watching.ts";
import {
  listTree,
  mirrorDiff,
  mirrored,
  startLoop,
  waitFor,
  withWork,
  writeFile,
} from "../helpers.ts";

/** Wait until the replica mirrors the source, or fail with what differs. */
async function converges(work: string, what: string, ms: number): Promise<void> {
  try {
    await waitFor(what, mirrored(work), ms, 50);
  } catch (error) {
    const diff = mirrorDiff(`${work}/src`, `${work}/rep`);
    throw new Error(
      `${(error as Error).message}: ${diff.length} differences\n${diff.slice(0, 10).join("\n")}`,
    );
  }
}

Deno.test({
  name:
    "watch: a burst whose events are mostly lost converges within seconds, not at the next full cycle",
  sanitizeOps: false, // the worker's own timers
  fn: async () => {
    await withWork(async (work) => {
      for (let d = 0; d < 40; d++) writeFile(`${work}/src/d${d}/deep/keep.txt`, "keep");
      // Where Deno's queue of 16 is full, three events of four are lost: the
      // worker sees the queue full (a loss is possible), not what was lost.
      // The burst's first batch always meets a full queue here.
      let events = 0, burst = false;
      const lossy: EventSourceFactory = (onBatch, roots) =>
        workerEvents((batch) => {
          const full = batch.lost || (burst && (burst = false, true));
          if (!full) return onBatch(batch);
          const paths = batch.paths.filter(() => events++ % 4 === 0);
          onBatch({ ...batch, paths, written: [], lost: true });
        }, roots);
      const loop = watchingLoop(work, { events: lossy });
      try {
        await converges(work, "the first cycle", 10_000);
        const before = loop.fullCycles();
        await new Promise((resolve) => setTimeout(resolve, 200));
        burst = true;
        // 3,200 files across 40 folders both trees hold, a quarter removed, folders renamed.
        for (let d = 0; d < 40; d++) {
          for (let f = 0; f < 80; f++) {
            Deno.writeTextFileSync(`${work}/src/d${d}/deep/f${f}`, `${d}/${f}`);
          }
        }
        for (let d = 0; d < 40; d++) {
          for (let f = 0; f < 80; f += 4) Deno.removeSync(`${work}/src/d${d}/deep/f${f}`);
        }
        for (let d = 0; d < 4; d++) {
          Deno.renameSync(`${work}/src/d${d}/deep`, `${work}/src/d${d}/renamed`);
        }
        // Within seconds (the bench measures how many), not at the full cycle ten minutes away.
        await converges(work, "the burst", 10_000);
        assert.ok(loop.fullCycles() > before, "a full cycle repaired what the events missed");
      } finally {
        await loop.stop();
      }
    });
  },
});

Deno.test({
  name: "watch: a file left behind while it changed is copied again within a second or two",
  sanitizeOps: false,
  fn: async () => {
    await withWork(async (work) => {
      writeFile(`${work}/src/a/b/busy.txt`, "first");
      // Its first copy sees the source change under it.
      let first = true;
      const disk: Disk = {
        ...realDisk,
        copyFile: (from, to, size, sparse) => {
          const done = realDisk.copyFile(from, to, size, sparse);
          if (from.endsWith("busy.txt") && first) {
            first = false;
            Deno.writeTextFileSync(from, "SECOND"); // same length: not a grown file
          }
          return done;
        },
      };
      const loop = watchingLoop(work, { disk });
      try {
        await waitFor("the first cycle", () => listTree(`${work}/rep`).has("a/b"), 10_000);
        assert.ok(!first, "the copy was made and left behind");
        await converges(work, "the retry", 3_000);
        assert.equal(Deno.readTextFileSync(`${work}/rep/a/b/busy.txt`), "SECOND");
      } finally {
        await loop.stop();
      }
    });
  },
});

/** The inotify watches process `pid` holds (its /proc fdinfo lines; Deno reads /proc only with -A). */
function inotifyWatches(pid: number): number {
  const output = new Deno.Command("sh", {
    args: ["-c", `cat /proc/${pid}/fdinfo/* 2>/dev/null | grep -c '^inotify wd:'`],
    stdout: "piped",
  }).outputSync();
  return Number(new TextDecoder().decode(output.stdout).trim());
}

Deno.test("watch: a symlink to a big folder is never followed (one watch per folder of the trees)", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a/b/f.txt`, "f");
    Deno.symlinkSync("/usr", `${work}/src/usr`);
    const loop = startLoop(work, "600", "--watch");
    try {
      await waitFor("the first cycle", mirrored(work), 10_000);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const watches = inotifyWatches(loop.child.pid);
      // src, src/a, src/a/b and the same three in the replica.
      assert.ok(watches <= 12, `${watches} inotify watches`);
      writeFile(`${work}/src/a/b/g.txt`, "g");
      await waitFor("a change below, seen", mirrored(work), 3_000);
    } finally {
      await loop.stop();
    }
  });
});

Deno.test("watch: a folder renamed in the source is watched under its new name", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a/b/f.txt`, "f");
    const loop = startLoop(work, "600", "--watch");
    try {
      await waitFor("the first cycle", mirrored(work), 10_000);
      await new Promise((resolve) => setTimeout(resolve, 200));
      Deno.renameSync(`${work}/src/a`, `${work}/src/z`);
      await waitFor("the rename", mirrored(work), 3_000);
      await new Promise((resolve) => setTimeout(resolve, 200));
      writeFile(`${work}/src/z/b/new.txt`, "new");
      await waitFor("a change in the renamed folder", mirrored(work), 3_000);
      // mkdir -p of a deep new folder with files written at once.
      Deno.mkdirSync(`${work}/src/n/o/p/q`, { recursive: true });
      for (let i = 0; i < 20; i++) Deno.writeTextFileSync(`${work}/src/n/o/p/q/f${i}`, `${i}`);
      await waitFor("a new deep folder", mirrored(work), 3_000);
    } finally {
      await loop.stop();
    }
  });
});

Deno.test({
  name:
    "watch: folders made one by one add watches; past MAX_WATCHERS they move to a new worker, as one watch, the old one closed, and every folder still reports",
  sanitizeOps: false, // the workers' own timers
  fn: async () => {
    await withWork(async (work) => {
      writeFile(`${work}/src/first/a.txt`, "a");
      const sources: { watchers: number; batches: number }[] = [];
      const counting: EventSourceFactory = (onBatch, roots) => {
        const made = { watchers: 0, batches: 0 };
        sources.push(made);
        return workerEvents((batch) => {
          made.watchers = batch.watchers ?? made.watchers;
          made.batches++;
          onBatch(batch);
        }, roots);
      };
      const loop = watchingLoop(work, { events: counting });
      try {
        await converges(work, "the first cycle", 10_000);
        // Each folder made on its own: a watch of its own in the worker, on each side.
        for (let i = 0; i <= MAX_WATCHERS; i++) {
          writeFile(`${work}/src/made/d${i}/f.txt`, `${i}`);
          await converges(work, `folder ${i}`, 3_000);
        }
        await waitFor("a new worker", () => sources.length >= 2, 3_000);
        // One more cycle, no folder made: a move still due (its worker past MAX_WATCHERS when
        // the last folders came) is made now, before the counts are taken.
        writeFile(`${work}/src/first/settle.txt`, "settle");
        await converges(work, "a cycle that makes no folder", 3_000);
        await new Promise((resolve) => setTimeout(resolve, 1_500)); // the old one closed
        const workers = sources.length, batches = sources.map((made) => made.batches);
        // Every folder, old and new, still reports its events, through the new worker alone.
        writeFile(`${work}/src/first/b.txt`, "b");
        writeFile(`${work}/src/made/d0/g.txt`, "g");
        writeFile(`${work}/src/made/d${MAX_WATCHERS}/h.txt`, "h");
        await converges(work, "changes in old and new folders", 3_000);
        assert.equal(sources.length, workers, "no folder was made: no new worker");
        assert.ok(sources.at(-1)!.watchers < MAX_WATCHERS, JSON.stringify(sources));
        assert.deepEqual(
          sources.slice(0, -1).map((made) => made.batches),
          batches.slice(0, -1),
          "the old workers are closed",
        );
      } finally {
        await loop.stop();
      }
    });
  },
});

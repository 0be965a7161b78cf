import assert from "node:assert/strict";
import { getLogger, type LogRecord } from "npm:@logtape/logtape@^2.4.2";
import { MIN_BATCHED_WRITES } from "../../lib/engine/copy_scheduler.ts";
import { CopyWorker } from "../../lib/backends/local/copy_worker.ts";
import { type Disk, realDisk } from "../../lib/backends/local/disk.ts";
import { LocalReplica, LocalTree } from "../../lib/backends/local/local.ts";
import { Mirror } from "../../lib/engine/mirror.ts";
import { MirrorState } from "../../lib/state/state.ts";
import { assertMirrored, listTree, withWork } from "../helpers.ts";
import { mirrorIn, withRecords } from "./unit_helpers.ts";

Deno.test("mirror: an unchanged run reads no file content; one changed file is the only one read", async () => {
  await withWork(async (work) => {
    const sizes = [4096, 1000, 3 * 1024 * 1024]; // the last one is read asynchronously
    sizes.forEach((size, i) =>
      Deno.writeFileSync(`${work}/src/f${i}`, new Uint8Array(size).fill(i + 1))
    );
    // Each Mirror is a fresh run (as with --once): only the state file carries over.
    const run = async () => {
      const roots = { source: `${work}/src`, replica: `${work}/rep` };
      const { state } = await MirrorState.open(`${work}/state`, roots);
      try {
        const mirror = mirrorIn(work, realDisk, state);
        await mirror.cycle();
        await state.endCleanly(); // as the program does at its end
        return mirror.hashedBytes;
      } finally {
        state.close();
      }
    };
    const total = sizes.reduce((a, b) => a + b);
    const settle = () => new Promise((resolve) => setTimeout(resolve, 1100)); // ctimes: seconds
    // Settled sources, so the copies are recorded whenever the test runs.
    await settle();
    assert.equal(await run(), total, "copying reads the source once, for the tree digest");
    assert.equal(await run(), 0, "the mirror's own copies are not read again");
    await settle();
    assert.equal(await run(), 0, "an unchanged run reads nothing");
    assert.deepEqual([...Deno.readDirSync(`${work}/rep`)].map((e) => e.name).sort(), [
      "f0",
      "f1",
      "f2",
    ]);
    const f0 = `${work}/src/f0`;
    const before = Deno.statSync(f0);
    Deno.writeFileSync(f0, new Uint8Array(4096).fill(9));
    Deno.utimeSync(f0, before.atime!, before.mtime!);
    await settle();
    assert.equal(await run(), 4096, "only the changed source file is read");
    assert.deepEqual(Deno.readFileSync(`${work}/rep/f0`), Deno.readFileSync(f0));
  });
});

Deno.test("mirror: the tree digest reuses what the comparison read; nothing is read twice", async () => {
  await withWork(async (work) => {
    Deno.mkdirSync(`${work}/rep`);
    Deno.writeFileSync(`${work}/src/f`, new Uint8Array(4096).fill(1));
    Deno.writeFileSync(`${work}/rep/f`, new Uint8Array(4096).fill(2)); // same size, other bytes
    const mirror = mirrorIn(work);
    const tally = await mirror.cycle();
    assert.equal(tally.updated, 1);
    assert.match(tally.digest ?? "", /^[0-9a-f]{32}$/);
    // Both sides once to compare; the digest takes the source's MD5 from that,
    // though the file is too new for the index to keep it.
    assert.equal(mirror.hashedBytes, 2 * 4096);
  });
});

Deno.test("mirror: a file that vanishes before its copy is one WARNING, not a failure", async () => {
  await withRecords(async (records) => {
    await withWork(async (work) => {
      Deno.writeTextFileSync(`${work}/src/gone.txt`, "soon gone");
      Deno.writeTextFileSync(`${work}/src/kept.txt`, "kept");
      const vanishing: Disk = {
        ...realDisk,
        copyFile: (from, to, size) => {
          if (from.endsWith("/gone.txt")) Deno.removeSync(from); // deleted between scan and copy
          return realDisk.copyFile(from, to, size);
        },
      };
      const mirror = mirrorIn(work, vanishing);
      const tally = await mirror.cycle();
      assert.equal(tally.failed, 0);
      assert.equal(tally.warnings, 1);
      const warnings = records.filter((r) => r.level === "warning");
      assert.equal(warnings.length, 1);
      assert.equal(warnings[0]!.properties.path, "gone.txt");
      assert.ok(!records.some((r) => r.level === "error"));
      assert.deepEqual([...listTree(`${work}/rep`).keys()], ["kept.txt"]);
    });
  });
});

Deno.test("mirror: a copy worker that fails is reported once; its copies and later cycles go on without it", async () => {
  await withWork(async (work) => {
    const many = (folder: string) => {
      Deno.mkdirSync(`${work}/src/${folder}`);
      // Batches start after MIN_BATCHED_WRITES small copies in a cycle.
      for (let i = 0; i < 2 * MIN_BATCHED_WRITES; i++) {
        Deno.writeTextFileSync(`${work}/src/${folder}/f${i}`, `${i}`);
      }
    };
    let started = 0;
    const failures: Error[] = [];
    const replica = new LocalReplica(`${work}/rep`, {
      makeWorker: () => (started++, new CopyWorker("throw new Error('broken worker')")),
      onWorkerFailure: (error) => failures.push(error),
    });
    const mirror = new Mirror(new LocalTree(`${work}/src`), replica, { log: getLogger(["test"]) });
    many("first");
    assert.equal((await mirror.cycle()).failed, 0);
    many("second");
    assert.equal((await mirror.cycle()).failed, 0);
    replica.close();
    assertMirrored(`${work}/src`, `${work}/rep`);
    assert.equal(started, 1, "not started again");
    assert.equal(failures.length, 1);
    assert.match(failures[0]!.message, /broken worker/);
  });
});

Deno.test("mirror: a missing replica inside the source is refused before it is made", async () => {
  await withRecords(async (records) => {
    await withWork(async (work) => {
      Deno.writeTextFileSync(`${work}/src/a.jpg`, "photo");
      const mirror = new Mirror(
        new LocalTree(`${work}/src`),
        new LocalReplica(`${work}/src/backup`),
        {
          log: getLogger(["test"]),
        },
      );
      const result = await mirror.cycle();
      assert.equal(result.failed, 1);
      assert.deepEqual([...Deno.readDirSync(`${work}/src`)].map((e) => e.name), ["a.jpg"]);
      const messages = records.map((record) => record.message.join(""));
      assert.ok(
        messages.some((m) => m.includes("overlaps the source folder")),
        messages.join("\n"),
      );
    });
  });
});

Deno.test("mirror: a second cycle of one mirror while one is under way is refused, not interleaved", async () => {
  await withWork(async (work) => {
    Deno.writeTextFileSync(`${work}/src/a`, "a");
    const mirror = mirrorIn(work);
    const first = mirror.cycle();
    await assert.rejects(mirror.cycle(), /under way/);
    assert.equal((await first).copied, 1);
    assert.equal((await mirror.cycle()).copied, 0, "one after another is fine");
  });
});

Deno.test("mirror: a folder moved into a new folder while one is made at its old name: a partial cycle does as a full one (found by the randomized --watch test)", async () => {
  await withWork(async (work) => {
    // `b` moves into a new folder `c` and a new `b` is made at once: one partial cycle walks
    // the root (where `c` is new) before `b`. The replica's `b` was moved into `c` (being
    // filled under a temp name: errors), and `b` then walked with its replica side gone
    // (never made again until the next full cycle). It stays, as in a full cycle.
    const src = `${work}/src`;
    Deno.mkdirSync(`${src}/b/a/a/b`, { recursive: true });
    Deno.mkdirSync(`${src}/b/c/a`, { recursive: true });
    Deno.writeTextFileSync(`${src}/b/c/b`, "x");
    const mirror = await mirroredSettled(work);
    Deno.mkdirSync(`${src}/c`);
    Deno.renameSync(`${src}/b`, `${src}/c/b`);
    Deno.mkdirSync(`${src}/b/a`, { recursive: true });
    await withRecords(async (records) => {
      const result = await mirror.partialCycle(new Set(["c", "b", "c/b", "b/a"]));
      assertNoFailure(result, records);
      assert.equal(result.moved, 1, "the file below it is moved, not copied");
    });
    assertMirrored(src, `${work}/rep`);
  });
});

Deno.test("mirror: a folder moved into a new folder is walked where it was moved, before the new folder is in place (full and partial cycles; found by the randomized --watch test)", async () => {
  for (const cycle of ["full", "partial"] as const) {
    await withWork(async (work) => {
      // `b` moves into the new folders `a/a` (as `a/a/c`), and gets a new folder `b/b/c`
      // first. The new `a` is filled under a temp name; the replica's `b` was moved in there,
      // and then listed at `a/a/c`, where it was not yet: the walk found nothing there, tried
      // to make `a/a/c/b` again, and never made `a/a/c/b/c`.
      const src = `${work}/src`;
      Deno.mkdirSync(`${src}/b/b/a`, { recursive: true });
      Deno.writeTextFileSync(`${src}/b/b/a/f.txt`, "f");
      Deno.writeTextFileSync(`${src}/b/g.txt`, "g");
      const mirror = await mirroredSettled(work);
      Deno.mkdirSync(`${src}/b/b/c`);
      Deno.mkdirSync(`${src}/a/a`, { recursive: true });
      Deno.renameSync(`${src}/b`, `${src}/a/a/c`);
      await withRecords(async (records) => {
        const result = cycle === "full"
          ? await mirror.cycle()
          : await mirror.partialCycle(new Set(["a", "b", "b/b/c"]));
        assertNoFailure(result, records, `${cycle}: `);
        assert.equal(result.moved, 1, `${cycle}: the folder is moved, not copied`);
      });
      assertMirrored(src, `${work}/rep`);
    });
  }
});

/** A mirror of `work/src` (settled: its pairs are recorded) after its first cycle. */
async function mirroredSettled(work: string): Promise<Mirror> {
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const mirror = mirrorIn(
    work,
    realDisk,
    MirrorState.inMemory({ source: `${work}/src`, replica: `${work}/rep` }),
  );
  await mirror.cycle();
  return mirror;
}

/** The cycle failed nothing; else the log's warnings and errors say what. */
function assertNoFailure(
  result: { readonly failed: number },
  records: readonly LogRecord[],
  label = "",
): void {
  const problems = records.filter((record) => record.level !== "info");
  assert.equal(
    result.failed,
    0,
    label + problems.map((record) => JSON.stringify(record.properties)).join("\n"),
  );
}

/**
 * Moves (#19): a file or folder renamed or moved in the source is moved in
 * the replica (one rename, its inodes kept), not copied again; whatever
 * cannot be proved a move is copied, and every case ends exactly right.
 */
import assert from "node:assert/strict";
import { LocalReplica, LocalTree } from "../../lib/backends/local/local.ts";
import { Mirror } from "../../lib/engine/mirror.ts";
import { MirrorState } from "../../lib/state/state.ts";
import {
  afterCtimeSecond,
  assertMirrored,
  logLines,
  messagesSince,
  mirrored,
  runMirror,
  runOnce,
  runOnceUnder,
  startLoop,
  waitFor,
  withoutRootOverrides,
  withWork,
  writeFile,
} from "../helpers.ts";

/** A first run on settled files (their copies are recorded), then wait for the rename's ctime second. */
async function mirroredOnce(work: string, last: string): Promise<void> {
  await afterCtimeSecond(`${work}/src/${last}`);
  assert.equal((await runOnce(work)).code, 0);
  await new Promise((resolve) => setTimeout(resolve, 1000)); // a rename in a later second than the writes
}

const ino = (path: string) => Deno.lstatSync(path).ino;

Deno.test("moves: a renamed folder is one move of the replica folder; its files keep their inodes", async () => {
  await withWork(async (work) => {
    for (let i = 0; i < 20; i++) {
      writeFile(`${work}/src/photos/deep/p${i}.jpg`, `photo ${i}`.repeat(50));
    }
    await mirroredOnce(work, "photos/deep/p19.jpg");
    const before = ino(`${work}/rep/photos/deep/p7.jpg`);
    Deno.renameSync(`${work}/src/photos`, `${work}/src/albums`);
    const mark = logLines(`${work}/log.txt`).length;
    assert.equal((await runOnce(work)).code, 0);
    const messages = messagesSince(work, mark);
    assert.ok(messages.includes("Folder photos has been moved to albums."), messages.join("\n"));
    assert.match(
      messages.at(-1)!,
      /^Cycle finished: 0 copied, 0 updated, 0 linked, 0 removed, 1 moved, /,
    );
    assert.equal(ino(`${work}/rep/albums/deep/p7.jpg`), before, "not copied again");
    assertMirrored(`${work}/src`, `${work}/rep`);
  });
});

Deno.test("moves: no file below a renamed folder is read, and a moved file is read once (source side)", async () => {
  await withWork(async (work) => {
    for (let i = 0; i < 10; i++) writeFile(`${work}/src/a/f${i}`, `file ${i}`.repeat(100));
    writeFile(`${work}/src/big.bin`, "x".repeat(100_000));
    await afterCtimeSecond(`${work}/src/big.bin`);
    const roots = { source: `${work}/src`, replica: `${work}/rep` };
    const run = async () => {
      const { state } = await MirrorState.open(`${work}/state`, roots);
      try {
        const mirror = new Mirror(new LocalTree(roots.source), new LocalReplica(roots.replica), {
          state,
          log: { debug() {}, info() {}, warn() {}, error() {}, isEnabledFor: () => false },
        });
        const tally = await mirror.cycle();
        await state.endCleanly();
        return { tally, read: mirror.hashedBytes };
      } finally {
        state.close();
      }
    };
    await run();
    await run(); // the digest read what it needed: nothing is read for it from now on
    await new Promise((resolve) => setTimeout(resolve, 1000));
    Deno.renameSync(`${work}/src/a`, `${work}/src/b`);
    Deno.mkdirSync(`${work}/src/c`);
    Deno.renameSync(`${work}/src/big.bin`, `${work}/src/c/big.bin`);
    const { tally, read } = await run();
    assert.equal(tally.moved, 2);
    assert.equal(tally.copied, 0);
    assert.equal(read, 100_000, "only the moved file, once, to prove its content");
    assertMirrored(`${work}/src`, `${work}/rep`);
  });
});

Deno.test("moves: swaps, cycles, a case-only rename and a move onto a path in use end exactly right", async () => {
  await withWork(async (work) => {
    const files: Record<string, string> = {
      "s/a": "A content",
      "s/b": "B content!",
      "c/x": "X",
      "c/y": "YY",
      "c/z": "ZZZ",
      "k/Name.txt": "case",
      "o/old": "old content",
      "o/taken": "in the way",
    };
    for (const [path, text] of Object.entries(files)) writeFile(`${work}/src/${path}`, text);
    await mirroredOnce(work, "o/taken");
    const src = `${work}/src`;
    const mv = (from: string, to: string) => Deno.renameSync(`${src}/${from}`, `${src}/${to}`);
    mv("s/a", "s/t"), mv("s/b", "s/a"), mv("s/t", "s/b"); // a swap
    mv("c/x", "c/t"), mv("c/z", "c/x"), mv("c/y", "c/z"), mv("c/t", "c/y"); // a cycle
    mv("k/Name.txt", "k/name.txt"); // case only
    mv("o/old", "o/taken"); // onto a path that held something else
    assert.equal((await runOnce(work)).code, 0);
    assertMirrored(`${work}/src`, `${work}/rep`);
    const verified = await runMirror(["--source", "src", "--replica", "rep", "--verify"], work);
    assert.equal(verified.code, 0, verified.stdout);
  });
});

Deno.test("moves: an old replica file changed behind the mirror's back is not moved but copied", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a/file.txt`, "the source's bytes");
    await mirroredOnce(work, "a/file.txt");
    writeFile(`${work}/rep/a/file.txt`, "someone else's!!!!"); // same size
    Deno.mkdirSync(`${work}/src/b`);
    Deno.renameSync(`${work}/src/a/file.txt`, `${work}/src/b/file.txt`);
    const mark = logLines(`${work}/log.txt`).length;
    assert.equal((await runOnce(work)).code, 0);
    const messages = messagesSince(work, mark);
    assert.ok(messages.includes("File b/file.txt has been copied."), messages.join("\n"));
    assert.ok(!messages.some((line) => line.includes("moved to")), messages.join("\n"));
    assertMirrored(`${work}/src`, `${work}/rep`);
  });
});

Deno.test({
  name: "moves: a file moved out of a folder that may not be read is copied",
  ignore: withoutRootOverrides() === undefined, // needs setpriv (util-linux)
  fn: async () => {
    await withWork(async (work) => {
      writeFile(`${work}/src/closed/file.txt`, "inside");
      await mirroredOnce(work, "closed/file.txt");
      Deno.renameSync(`${work}/src/closed/file.txt`, `${work}/src/file.txt`);
      Deno.chmodSync(`${work}/src/closed`, 0o000);
      try {
        const mark = logLines(`${work}/log.txt`).length;
        assert.equal((await runOnceUnder(withoutRootOverrides(), work)).code, 0);
        const messages = messagesSince(work, mark);
        assert.ok(messages.includes("File file.txt has been copied."), messages.join("\n"));
        // Its old folder could not be read: nothing in it was removed.
        assert.equal(Deno.readTextFileSync(`${work}/rep/closed/file.txt`), "inside");
      } finally {
        Deno.chmodSync(`${work}/src/closed`, 0o755);
      }
    });
  },
});

Deno.test("moves: a dry run says what it would move; --max-delete does not count moves", async () => {
  await withWork(async (work) => {
    for (let i = 0; i < 5; i++) writeFile(`${work}/src/d/f${i}`, `${i}`.repeat(10));
    await mirroredOnce(work, "d/f4");
    Deno.renameSync(`${work}/src/d`, `${work}/src/e`);
    const mark = logLines(`${work}/log.txt`).length;
    const dry = await runOnce(work, "--dry-run");
    assert.equal(dry.code, 0);
    assert.deepEqual(messagesSince(work, mark).slice(1), [
      "Would move folder d to e.",
      "Dry run finished: 1 action would be taken, 0 failed; nothing was changed.",
    ]);
    assert.ok(Deno.statSync(`${work}/rep/d`).isDirectory, "nothing changed");
    const limited = await runOnce(work, "--max-delete", "0");
    assert.equal(limited.code, 0, limited.stderr);
    assertMirrored(`${work}/src`, `${work}/rep`);
  });
});

Deno.test("moves: with --watch, a folder renamed is moved within moments", async () => {
  await withWork(async (work) => {
    for (let i = 0; i < 10; i++) writeFile(`${work}/src/x/y/f${i}`, `${i}`.repeat(100));
    await afterCtimeSecond(`${work}/src/x/y/f9`);
    const loop = startLoop(work, "600", "--watch");
    try {
      await waitFor("the first cycle", mirrored(work), 10_000);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const before = ino(`${work}/rep/x/y/f3`);
      Deno.renameSync(`${work}/src/x/y`, `${work}/src/x/z`);
      await waitFor("the move", mirrored(work), 3_000);
      assert.equal(ino(`${work}/rep/x/z/f3`), before);
    } finally {
      await loop.stop();
    }
    assert.ok(
      logLines(`${work}/log.txt`).some((line) =>
        line.endsWith("Folder x/y has been moved to x/z.")
      ),
    );
  });
});

Deno.test("moves: with --exclude no folder is moved, but a renamed folder's files are, one by one (their ctime unchanged), and --max-delete does not count them", async () => {
  await withWork(async (work) => {
    for (let i = 0; i < 5; i++) writeFile(`${work}/src/photos/p${i}.jpg`, `photo ${i}`.repeat(40));
    await mirroredOnce(work, "photos/p4.jpg");
    const before = ino(`${work}/rep/photos/p3.jpg`);
    Deno.renameSync(`${work}/src/photos`, `${work}/src/albums`);
    const mark = logLines(`${work}/log.txt`).length;
    const run = await runOnce(work, "--exclude", "*.tmp", "--max-delete", "1");
    assert.equal(run.code, 0, run.stderr);
    const messages = messagesSince(work, mark);
    assert.ok(
      messages.includes("File photos/p3.jpg has been moved to albums/p3.jpg."),
      messages.join("\n"),
    );
    assert.match(messages.at(-1)!, / 0 copied, .* 1 removed, 5 moved, .*; 0 bytes in /);
    assert.equal(ino(`${work}/rep/albums/p3.jpg`), before, "not copied again");
    assertMirrored(`${work}/src`, `${work}/rep`);
  });
});

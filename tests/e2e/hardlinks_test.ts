/**
 * Hard links (#19): source files that share an inode are one file with the
 * same names in the replica, as `rsync -aH` keeps them; a group that changes
 * (an edit through one name, a name leaving, a name joining) is brought back
 * in line, in full cycles and in `--watch` cycles.
 */
import assert from "node:assert/strict";
import {
  afterCtimeSecond,
  assertMirrored,
  listTree,
  logLines,
  messagesSince,
  mirrored,
  runMirror,
  runOnce,
  startLoop,
  succeeds,
  waitFor,
  withWork,
  writeFile,
} from "../helpers.ts";

/** Run once; the messages it logged. */
async function once(work: string, ...extra: string[]): Promise<string[]> {
  const mark = (() => {
    try {
      return logLines(`${work}/log.txt`).length;
    } catch {
      return 0;
    }
  })();
  const run = await runOnce(work, ...extra);
  assert.equal(run.code, 0, run.stderr);
  return messagesSince(work, mark);
}

/** Each file's names, as sets of paths sharing an inode (files with one name left out). */
function groups(root: string): string[][] {
  return [...listTree(root)]
    .filter(([, item]) => item.links !== undefined)
    .map(([path, item]) => [path, ...item.links!].sort())
    .filter((names, i, all) => all.findIndex((other) => other[0] === names[0]) === i)
    .sort();
}

const ino = (path: string) => Deno.lstatSync(path).ino;

Deno.test("hard links: a file with three names in three folders is one replica file with them, as rsync -aH keeps it; the next run changes nothing", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`;
    writeFile(`${src}/a/photo.jpg`, "p".repeat(50_000));
    Deno.mkdirSync(`${src}/b/deep/er`, { recursive: true });
    Deno.linkSync(`${src}/a/photo.jpg`, `${src}/b/deep/er/same.jpg`);
    Deno.linkSync(`${src}/a/photo.jpg`, `${src}/top.jpg`);
    writeFile(`${src}/alone.txt`, "alone");
    await afterCtimeSecond(`${src}/top.jpg`);

    const first = await once(work);
    assert.equal(first.filter((m) => / has been linked to /.test(m)).length, 2, first.join("\n"));
    assert.match(first.at(-1)!, / 2 copied, 0 updated, 2 linked, .*; 50005 bytes in /);
    assertMirrored(src, `${work}/rep`); // names, bytes, modes, mtimes and links
    assert.equal(Deno.lstatSync(`${work}/rep/top.jpg`).nlink, 3);
    assert.deepEqual(groups(`${work}/rep`), [["a/photo.jpg", "b/deep/er/same.jpg", "top.jpg"]]);
    if (succeeds("rsync", "--version")) {
      const rsync = new Deno.Command("rsync", {
        args: ["-aH", "--delete", `${src}/`, `${work}/rs/`],
      });
      assert.equal((await rsync.output()).code, 0);
      assert.deepEqual(groups(`${work}/rep`), groups(`${work}/rs`), "as rsync -aH keeps them");
    }

    const second = await once(work);
    assert.match(
      second.at(-1)!,
      /: 0 copied, 0 updated, 0 linked, 0 removed, .* 0 attribute updates, .*; 0 bytes in /,
    );
    const verify = await runMirror(["--source", "src", "--replica", "rep", "--verify"], work);
    assert.equal(verify.code, 0, verify.stdout);
  });
});

Deno.test("hard links: an edit through one name, a name leaving its group and one joining it end exactly right", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`, rep = `${work}/rep`;
    writeFile(`${src}/x/a.bin`, "1".repeat(10_000));
    Deno.mkdirSync(`${src}/y`);
    Deno.linkSync(`${src}/x/a.bin`, `${src}/y/b.bin`);
    Deno.linkSync(`${src}/x/a.bin`, `${src}/c.bin`);
    writeFile(`${src}/y/solo.bin`, "s".repeat(20_000));
    await afterCtimeSecond(`${src}/c.bin`);
    await once(work);

    // An edit in place through one name: every name has the new bytes, still one file.
    Deno.writeTextFileSync(`${src}/y/b.bin`, "2".repeat(10_001));
    await afterCtimeSecond(`${src}/y/b.bin`);
    const edit = await once(work);
    assert.match(edit.at(-1)!, / 1 updated, 2 linked, .*; 10001 bytes in /, edit.join("\n"));
    assertMirrored(src, rep);

    // A name leaves the group: the same bytes, a file of its own.
    const bytes = Deno.readFileSync(`${src}/c.bin`);
    Deno.removeSync(`${src}/c.bin`);
    Deno.writeFileSync(`${src}/c.bin`, bytes);
    await afterCtimeSecond(`${src}/c.bin`);
    await once(work);
    assertMirrored(src, rep);
    assert.equal(Deno.lstatSync(`${rep}/c.bin`).nlink, 1);
    assert.equal(ino(`${rep}/x/a.bin`), ino(`${rep}/y/b.bin`));

    // A name joins a file that had one name: linked, not copied (no byte written).
    Deno.mkdirSync(`${src}/z/deep`, { recursive: true });
    Deno.linkSync(`${src}/y/solo.bin`, `${src}/z/deep/solo-too.bin`);
    await afterCtimeSecond(`${src}/z/deep/solo-too.bin`);
    const join = await once(work);
    assert.ok(
      join.includes("File z/deep/solo-too.bin has been linked to y/solo.bin."),
      join.join("\n"),
    );
    assert.match(join.at(-1)!, / 0 copied, 0 updated, 1 linked, .*; 0 bytes in /);
    assertMirrored(src, rep);

    // A name removed: the others stay one file.
    Deno.removeSync(`${src}/x/a.bin`);
    await once(work);
    assertMirrored(src, rep);
    assert.equal(Deno.lstatSync(`${rep}/y/b.bin`).nlink, 1);
  });
});

Deno.test("hard links: a dry run says what it would link and changes nothing", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`;
    writeFile(`${src}/a`, "shared");
    Deno.linkSync(`${src}/a`, `${src}/b`);
    const run = await runOnce(work, "--dry-run");
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /\[INFO\]: Would copy file a\.\n/);
    assert.match(run.stdout, /\[INFO\]: Would link file b to a\.\n/);
    assert.throws(() => Deno.lstatSync(`${work}/rep`), Deno.errors.NotFound);
  });
});

Deno.test("hard links: replica files linked elsewhere (a cp -al snapshot), and source files whose other names are outside the source, are mirrored as files and left alone", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`, rep = `${work}/rep`;
    for (let i = 0; i < 5; i++) writeFile(`${src}/d/f${i}`, `file ${i}`);
    // The source's files have other names outside it (it is a snapshot itself).
    Deno.mkdirSync(`${work}/outside`);
    for (let i = 0; i < 5; i++) Deno.linkSync(`${src}/d/f${i}`, `${work}/outside/f${i}`);
    await afterCtimeSecond(`${src}/d/f4`);
    await once(work);
    assertMirrored(src, rep);
    assert.equal(Deno.lstatSync(`${rep}/d/f0`).nlink, 1);
    // A snapshot of the replica, by hard links: the next run leaves both alone.
    assert.ok(succeeds("cp", "-al", rep, `${work}/snapshot`));
    const before = ino(`${rep}/d/f3`);
    const again = await once(work);
    assert.match(again.at(-1)!, / 0 copied, 0 updated, 0 linked, .*; 0 bytes in /);
    assert.equal(ino(`${rep}/d/f3`), before);
    // A file edited in the source is written anew in the replica: the snapshot keeps the old bytes.
    Deno.writeTextFileSync(`${src}/d/f3`, "edited");
    await once(work);
    assertMirrored(src, rep);
    assert.equal(Deno.readTextFileSync(`${work}/snapshot/d/f3`), "file 3");
  });
});

Deno.test("hard links: --verify reports the names of one source file that are separate files in the replica", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`, rep = `${work}/rep`;
    writeFile(`${src}/a`, "shared");
    Deno.linkSync(`${src}/a`, `${src}/b`);
    await once(work);
    // Behind the program's back: b becomes a copy of its own.
    const b = Deno.statSync(`${rep}/b`);
    Deno.removeSync(`${rep}/b`);
    writeFile(`${rep}/b`, "shared", 0o644, b.mtime!.getTime());
    Deno.utimeSync(rep, Deno.statSync(src).atime!, Deno.statSync(src).mtime!);
    const verify = await runMirror(["--source", "src", "--replica", "rep", "--verify"], work);
    assert.notEqual(verify.code, 0);
    assert.match(verify.stdout, /^hard links differ: file a \(also b vs no other name\)$/m);
    assert.match(verify.stdout, /^hard links differ: file b \(also a vs no other name\)$/m);
    assert.doesNotMatch(verify.stdout, /content differs|mtime differs/);
    await once(work);
    assertMirrored(src, rep);
  });
});

Deno.test("watch: a hard link made four folders deep, and an edit through a name in another folder, are mirrored within moments", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`;
    writeFile(`${src}/top/file.txt`, "first");
    Deno.mkdirSync(`${src}/a/b/c/d`, { recursive: true });
    // Settled, so that its copy is recorded: the state is how a --watch cycle
    // that walks only the link's folder finds the file's other name.
    await afterCtimeSecond(`${src}/top/file.txt`);
    const loop = startLoop(work, "3600", "--watch");
    try {
      await waitFor("the first cycle", mirrored(work));
      await new Promise((resolve) => setTimeout(resolve, 200)); // every folder watched
      Deno.linkSync(`${src}/top/file.txt`, `${src}/a/b/c/d/link.txt`);
      await waitFor("the link", mirrored(work), 3_000);
      assert.equal(ino(`${work}/rep/top/file.txt`), ino(`${work}/rep/a/b/c/d/link.txt`));
      // Written through the deep name: only its folder has an event.
      Deno.writeTextFileSync(`${src}/a/b/c/d/link.txt`, "second, longer");
      await waitFor("the edit through the other name", mirrored(work), 3_000);
      assert.equal(Deno.readTextFileSync(`${work}/rep/top/file.txt`), "second, longer");
    } finally {
      await loop.stop();
    }
  });
});

Deno.test("watch: a name linked to a file too new for the state to know it is found by a full cycle, run at once", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`;
    Deno.mkdirSync(`${src}/a/b`, { recursive: true });
    Deno.mkdirSync(`${src}/x/y`, { recursive: true });
    const loop = startLoop(work, "3600", "--watch");
    try {
      await waitFor("the first cycle", mirrored(work));
      await new Promise((resolve) => setTimeout(resolve, 200)); // every folder watched
      // Copied in its own ctime second (not recorded), then given a second name elsewhere.
      writeFile(`${src}/a/b/new.txt`, "new");
      await waitFor("the new file", () => Deno.statSync(`${work}/rep/a/b/new.txt`).size === 3);
      Deno.linkSync(`${src}/a/b/new.txt`, `${src}/x/y/same.txt`);
      await waitFor("the link", mirrored(work), 3_000);
      assert.equal(ino(`${work}/rep/a/b/new.txt`), ino(`${work}/rep/x/y/same.txt`));
    } finally {
      await loop.stop();
    }
  });
});

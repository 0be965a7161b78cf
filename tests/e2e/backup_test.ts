/**
 * `--backup-dir` and `--backup-keep` on a local replica, through the real
 * program on real folders: what a cycle deletes or overwrites is found in
 * the cycle's folder byte for byte, four folders deep; an overwrite keeps the
 * old file itself (a second name of it); a backup that cannot be made (a full
 * disk) blocks its deletion; `--dry-run` writes nothing; `--watch` adds to
 * the full cycle's folder; `--backup-keep` removes only the program's own
 * cycle folders.
 */
import assert from "node:assert/strict";
import {
  assertMirrored,
  canMount,
  logHas,
  logLines,
  mountTmpfs,
  runOnce,
  startLoop,
  succeeds,
  waitFor,
  withWork,
  writeFile,
} from "../helpers.ts";

const CYCLE = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$/;

/** The cycle folders in `dir`, oldest first. */
function cycleFolders(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((entry) => entry.name).filter((name) => CYCLE.test(name))
      .sort();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

/** Every file below `dir` (relative path -> its text). */
function filesBelow(dir: string, prefix = ""): Map<string, string> {
  const found = new Map<string, string>();
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory) {
      for (const [below, text] of filesBelow(`${dir}/${entry.name}`, `${path}/`)) {
        found.set(below, text);
      }
    } else if (entry.isFile) found.set(path, Deno.readTextFileSync(`${dir}/${entry.name}`));
    else found.set(path, `-> ${Deno.readLinkSync(`${dir}/${entry.name}`)}`);
  }
  return found;
}

/** Wait until the next second (two runs in one second share a cycle folder). */
async function nextSecond(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 1000 - Date.now() % 1000 + 20));
}

Deno.test("--backup-dir keeps what a cycle deletes or overwrites, four folders deep", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`, rep = `${work}/rep`, bak = `${work}/bak`;
    writeFile(`${src}/top.txt`, "top v1");
    writeFile(`${src}/a/b/c/d/deep.txt`, "deep v1");
    writeFile(`${src}/a/b/c/d/gone.txt`, "gone soon");
    writeFile(`${src}/old/x/y.txt`, "a folder removed whole");
    Deno.symlinkSync("top.txt", `${src}/link`);
    const first = await runOnce(work, "--backup-dir", "bak");
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(cycleFolders(bak), [], "nothing deleted or overwritten: no folder");
    const deepIno = Deno.statSync(`${rep}/a/b/c/d/deep.txt`).ino;

    await nextSecond();
    writeFile(`${src}/top.txt`, "top v2");
    writeFile(`${src}/a/b/c/d/deep.txt`, "deep v2, longer");
    Deno.removeSync(`${src}/a/b/c/d/gone.txt`);
    Deno.removeSync(`${src}/old`, { recursive: true });
    Deno.removeSync(`${src}/link`);
    Deno.symlinkSync("a", `${src}/link`);
    const second = await runOnce(work, "--backup-dir", "bak");
    assert.equal(second.code, 0, second.stderr);
    assertMirrored(src, rep);
    const [folder, ...more] = cycleFolders(bak);
    assert.deepEqual(more, []);
    assert.deepEqual(
      filesBelow(`${bak}/${folder}`),
      new Map([
        ["a/b/c/d/deep.txt", "deep v1"],
        ["a/b/c/d/gone.txt", "gone soon"],
        ["link", "-> top.txt"],
        ["old/x/y.txt", "a folder removed whole"],
        ["top.txt", "top v1"],
      ]),
    );
    // The old file itself (a second name, then the new one renamed over its path).
    assert.equal(Deno.statSync(`${bak}/${folder}/a/b/c/d/deep.txt`).ino, deepIno);
    assert.match(
      second.stdout,
      /File a\/b\/c\/d\/gone\.txt has been backed up to bak\/.*\/a\/b\/c\/d\/gone\.txt\./,
    );
    assert.match(second.stdout, /Folder old has been backed up to /);
    assert.match(second.stdout, / 0 failed, 5 backed up; /);

    // The same names again in the same cycle folder: numbered, nothing overwritten.
    writeFile(`${src}/top.txt`, "top v3");
    const third = await runOnce(work, "--backup-dir", "bak");
    assert.equal(third.code, 0, third.stderr);
    const folders = cycleFolders(bak);
    const last = folders.at(-1)!;
    const top = folders.length === 1 ? `${bak}/${last}/top.txt.~1~` : `${bak}/${last}/top.txt`;
    assert.equal(Deno.readTextFileSync(top), "top v2");
    assert.equal(Deno.readTextFileSync(`${bak}/${folder}/top.txt`), "top v1");
  });
});

Deno.test("--backup-dir: a name taken in the cycle folder gets a numbered suffix", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`, bak = `${work}/bak`;
    writeFile(`${src}/f.txt`, "v1");
    assert.equal((await runOnce(work, "--backup-dir", "bak")).code, 0);
    // Two updates within one cycle folder: a --watch mirror's partial cycles do that.
    const stamp = new Date().toISOString().slice(0, 19).replaceAll(":", "-") + "Z";
    Deno.mkdirSync(`${bak}/${stamp}`, { recursive: true });
    writeFile(`${bak}/${stamp}/f.txt`, "already there");
    writeFile(`${src}/f.txt`, "v2");
    const run = await runOnce(work, "--backup-dir", "bak");
    assert.equal(run.code, 0, run.stderr);
    const folder = cycleFolders(bak).at(-1)!;
    const kept = folder === stamp ? `${bak}/${folder}/f.txt.~1~` : `${bak}/${folder}/f.txt`;
    assert.equal(Deno.readTextFileSync(kept), "v1");
    assert.equal(Deno.readTextFileSync(`${bak}/${stamp}/f.txt`), "already there");
  });
});

Deno.test({
  name: "--backup-dir on another file system: copied; full, the deletion is blocked",
  ignore: !canMount(),
  fn: () =>
    withWork(async (work) => {
      const src = `${work}/src`, rep = `${work}/rep`, bak = `${work}/bak`;
      const unmount = mountTmpfs(bak, "1m");
      try {
        writeFile(`${src}/small.txt`, "small");
        Deno.writeFileSync(`${src}/big.bin`, new Uint8Array(1536 * 1024).fill(7));
        writeFile(`${src}/keep.txt`, "stays");
        assert.equal((await runOnce(work, "--backup-dir", "bak")).code, 0);

        // Another file system: a copy, then the removal.
        Deno.removeSync(`${src}/small.txt`);
        const copied = await runOnce(work, "--backup-dir", "bak");
        assert.equal(copied.code, 0, copied.stderr);
        const [folder] = cycleFolders(bak);
        assert.equal(Deno.readTextFileSync(`${bak}/${folder}/small.txt`), "small");
        assert.ok(!Deno.readDirSync(rep).some((entry) => entry.name === "small.txt"));

        // 1.5 MiB does not fit in 1 MiB: the file stays in the replica, with a WARNING.
        await nextSecond();
        Deno.removeSync(`${src}/big.bin`);
        const full = await runOnce(work, "--backup-dir", "bak");
        assert.equal(full.code, 1, "counted as failed");
        assert.equal(Deno.statSync(`${rep}/big.bin`).size, 1536 * 1024);
        assert.deepEqual(Deno.readFileSync(`${rep}/big.bin`), new Uint8Array(1536 * 1024).fill(7));
        const warning = logLines(`${work}/log.txt`).find((line) =>
          line.includes("big.bin") && line.includes("[WARNING]")
        );
        assert.match(
          warning ?? "",
          /\[WARNING\]: File big\.bin was left as it is: it could not be backed up \(.*\); the next cycle retries\./,
        );
        assert.match(full.stdout, / 1 failed, 0 backed up; /);
        // No part of it is left in the backup folder, nor the cycle folder made for it.
        assert.deepEqual(cycleFolders(bak), [folder]);
        assert.ok(
          !Deno.readDirSync(`${bak}`).some((entry) =>
            Deno.readDirSync(`${bak}/${entry.name}`).some((inner) => inner.name === "big.bin")
          ),
        );
        assert.equal(Deno.readTextFileSync(`${rep}/keep.txt`), "stays");
      } finally {
        unmount();
      }
    }),
});

Deno.test("--backup-dir: --dry-run writes nothing and says what it would keep", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`;
    writeFile(`${src}/a/b/c/d/f.txt`, "v1");
    assert.equal((await runOnce(work, "--backup-dir", "bak")).code, 0);
    Deno.removeSync(`${src}/a/b/c/d/f.txt`);
    const dry = await runOnce(work, "--backup-dir", "bak", "--dry-run");
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /Would back up and remove file a\/b\/c\/d\/f\.txt\./);
    assert.match(
      dry.stdout,
      /Dry run finished: 1 action would be taken \(1 after a backup\), 0 failed;/,
    );
    assert.ok(!Deno.readDirSync(work).some((entry) => entry.name === "bak"));
    assert.equal(Deno.readTextFileSync(`${work}/rep/a/b/c/d/f.txt`), "v1");
  });
});

Deno.test("--backup-keep removes the oldest cycle folders, and only the program's", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`, bak = `${work}/bak`;
    writeFile(`${bak}/notes/readme.txt`, "the user's");
    writeFile(`${bak}/2020-01-01T00-00-00Z.old/x`, "not a cycle folder's name");
    writeFile(`${src}/f.txt`, "v0");
    assert.equal((await runOnce(work, "--backup-dir", "bak", "--backup-keep", "2")).code, 0);
    for (let n = 1; n <= 3; n++) {
      await nextSecond();
      writeFile(`${src}/f.txt`, `v${n}`);
      const run = await runOnce(work, "--backup-dir", "bak", "--backup-keep", "2");
      assert.equal(run.code, 0, run.stderr);
    }
    const folders = cycleFolders(bak);
    assert.equal(folders.length, 2);
    assert.deepEqual(folders.map((name) => Deno.readTextFileSync(`${bak}/${name}/f.txt`)), [
      "v1",
      "v2",
    ]);
    assert.equal(Deno.readTextFileSync(`${bak}/notes/readme.txt`), "the user's");
    assert.ok(Deno.statSync(`${bak}/2020-01-01T00-00-00Z.old/x`).isFile);
    assert.ok(logHas(work, /Backup folder bak\/.* has been removed \(--backup-keep 2\)\./)());
  });
});

Deno.test("--backup-dir: refused inside the source, and inside the replica unless excluded", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/f.txt`, "v1");
    const inSource = await runOnce(work, "--backup-dir", "src/bak");
    assert.equal(inSource.code, 2);
    assert.match(inSource.stderr, /--backup-dir: 'src\/bak' is inside the source folder/);
    assert.equal((await runOnce(work, "--backup-keep", "3")).code, 2);

    assert.equal((await runOnce(work)).code, 0);
    const inReplica = await runOnce(work, "--backup-dir", "rep/.bak");
    assert.equal(inReplica.code, 2);
    assert.match(inReplica.stderr, /inside the replica.*--exclude '\/\.bak\/'/);
    writeFile(`${work}/src/f.txt`, "v2, longer");
    const excluded = await runOnce(work, "--backup-dir", "rep/.bak", "--exclude", "/.bak/");
    assert.equal(excluded.code, 0, excluded.stderr);
    const [folder] = cycleFolders(`${work}/rep/.bak`);
    assert.equal(Deno.readTextFileSync(`${work}/rep/.bak/${folder}/f.txt`), "v1");
    // The next cycle leaves it alone.
    const again = await runOnce(work, "--backup-dir", "rep/.bak", "--exclude", "/.bak/");
    assert.equal(again.code, 0);
    assert.equal(Deno.readTextFileSync(`${work}/rep/.bak/${folder}/f.txt`), "v1");
  });
});

Deno.test("--backup-dir with --watch: a change four folders deep joins the full cycle's folder", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`, bak = `${work}/bak`;
    writeFile(`${src}/a/b/c/d/f.txt`, "v1");
    writeFile(`${src}/top.txt`, "top");
    assert.equal((await runOnce(work, "--backup-dir", "bak")).code, 0);
    await nextSecond();
    Deno.removeSync(`${src}/top.txt`);
    const loop = startLoop(work, "600", "--watch", "--backup-dir", "bak");
    try {
      await waitFor("the full cycle", logHas(work, /File top\.txt has been removed\./));
      const [folder] = cycleFolders(bak);
      await nextSecond();
      writeFile(`${src}/a/b/c/d/f.txt`, "v2, four folders deep");
      await waitFor(
        "the partial cycle",
        logHas(work, /File a\/b\/c\/d\/f\.txt has been updated\./),
      );
      assert.deepEqual(cycleFolders(bak), [folder]);
      assert.equal(Deno.readTextFileSync(`${bak}/${folder}/a/b/c/d/f.txt`), "v1");
      assert.equal(Deno.readTextFileSync(`${bak}/${folder}/top.txt`), "top");
    } finally {
      await loop.stop();
    }
  });
});

Deno.test("--backup-dir: --max-delete still counts deletions that are backed up", async () => {
  await withWork(async (work) => {
    for (const name of ["a", "b", "c"]) writeFile(`${work}/src/${name}.txt`, name);
    assert.equal((await runOnce(work, "--backup-dir", "bak")).code, 0);
    for (const name of ["a", "b", "c"]) Deno.removeSync(`${work}/src/${name}.txt`);
    const run = await runOnce(work, "--backup-dir", "bak", "--max-delete", "2");
    assert.notEqual(run.code, 0);
    assert.equal(Deno.readDirSync(`${work}/rep`).toArray().length, 3);
    assert.deepEqual(cycleFolders(`${work}/bak`), []);
  });
});

/** Whether `chattr +i` works here (root, a file system with the flag: ext4, not tmpfs). */
const canMakeImmutable = (() => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/f`, "");
    const ok = succeeds("chattr", "+i", `${dir}/f`);
    if (ok) succeeds("chattr", "-i", `${dir}/f`);
    if (!ok) console.error("backup tests with immutable files are ignored: 'chattr +i' failed");
    return ok;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
})();

Deno.test({
  name: "--backup-dir: a deletion or overwrite that fails leaves nothing in the backup folder",
  ignore: !canMakeImmutable,
  fn: () =>
    withWork(async (work) => {
      const src = `${work}/src`, rep = `${work}/rep`, bak = `${work}/bak`;
      writeFile(`${src}/a.txt`, "stays: it cannot be renamed");
      writeFile(`${src}/d/f.txt`, "v1");
      assert.equal((await runOnce(work, "--backup-dir", "bak")).code, 0);
      Deno.removeSync(`${src}/a.txt`);
      writeFile(`${src}/d/f.txt`, "v2, longer");
      // An immutable file cannot be renamed (EPERM, not another file system: no copy made);
      // nothing can be written in an immutable folder (the update fails after its backup).
      assert.ok(succeeds("chattr", "+i", `${rep}/a.txt`, `${rep}/d`));
      try {
        for (let run = 0; run < 2; run++) {
          await nextSecond();
          const failed = await runOnce(work, "--backup-dir", "bak", "--status-file", "st.json");
          assert.equal(failed.code, 1, failed.stdout);
          assert.match(failed.stderr, /File a\.txt was left as it is: it could not be backed up/);
          assert.match(failed.stdout + failed.stderr, /Could not update file d\/f\.txt/);
          // The status lists the backup that failed among the cycle's errors.
          const status = JSON.parse(Deno.readTextFileSync(`${work}/st.json`));
          assert.ok(
            status.lastCycle.errors.some((error: { path?: string }) => error.path === "a.txt"),
            JSON.stringify(status.lastCycle.errors),
          );
        }
        assert.deepEqual(cycleFolders(bak), [], "no backup, no empty cycle folder");
      } finally {
        succeeds("chattr", "-i", `${rep}/a.txt`, `${rep}/d`);
      }
      const after = await runOnce(work, "--backup-dir", "bak");
      assert.equal(after.code, 0, after.stderr);
      const [folder, ...more] = cycleFolders(bak);
      assert.deepEqual(more, []);
      assert.equal(Deno.readTextFileSync(`${bak}/${folder}/a.txt`), "stays: it cannot be renamed");
      assert.equal(Deno.readTextFileSync(`${bak}/${folder}/d/f.txt`), "v1");
    }),
});

Deno.test("--backup-dir with --watch: a symlink kept in the cycle folder is never gone through", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`, bak = `${work}/bak`;
    Deno.mkdirSync(`${work}/outside`);
    Deno.symlinkSync("../outside", `${src}/x`);
    assert.equal((await runOnce(work, "--backup-dir", "bak")).code, 0);
    // The symlink becomes a folder: the full cycle keeps the symlink as F/x.
    Deno.removeSync(`${src}/x`);
    writeFile(`${src}/x/y/z/w/deep.txt`, "v1");
    await nextSecond();
    const loop = startLoop(work, "600", "--watch", "--backup-dir", "bak");
    try {
      await waitFor("the full cycle", logHas(work, /Symlink x has been removed\./));
      await waitFor("the new folder", () => Deno.statSync(`${work}/rep/x/y/z/w/deep.txt`).isFile);
      const [folder] = cycleFolders(bak);
      assert.equal(Deno.readLinkSync(`${bak}/${folder}/x`), "../outside");
      // A change four folders down, below the name the symlink was kept under.
      writeFile(`${src}/x/y/z/w/deep.txt`, "v2, longer");
      await waitFor("the update", logHas(work, /File x\/y\/z\/w\/deep\.txt has been updated\./));
      assert.deepEqual(cycleFolders(bak), [folder]);
      assert.equal(Deno.readTextFileSync(`${bak}/${folder}/x.~1~/y/z/w/deep.txt`), "v1");
      assert.deepEqual([...Deno.readDirSync(`${work}/outside`)], []);
    } finally {
      await loop.stop();
    }
  });
});

Deno.test("--backup-dir inside the replica: rules read again that would not exclude it are refused", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`;
    writeFile(`${work}/rules`, "/.bak/\n");
    writeFile(`${src}/f.txt`, "v1");
    const args = ["--backup-dir", "rep/.bak", "--exclude-from", "rules"];
    assert.equal((await runOnce(work, ...args)).code, 0);
    writeFile(`${src}/f.txt`, "v2, longer");
    const loop = startLoop(work, "0.2", ...args);
    try {
      await waitFor("the backup", logHas(work, /File f\.txt has been backed up/));
      writeFile(`${work}/rules`, "# nothing excluded any more\n");
      await waitFor(
        "the refusal",
        logHas(work, /\[WARNING\]: The exclude files' new rules do not exclude the backup folder/),
      );
      await new Promise((resolve) => setTimeout(resolve, 600)); // a few more cycles
    } finally {
      await loop.stop();
    }
    const [folder] = cycleFolders(`${work}/rep/.bak`);
    assert.equal(Deno.readTextFileSync(`${work}/rep/.bak/${folder}/f.txt`), "v1");
    const warnings = logLines(`${work}/log.txt`).filter((line) => line.includes("new rules"));
    assert.equal(warnings.length, 1, "said once");
  });
});

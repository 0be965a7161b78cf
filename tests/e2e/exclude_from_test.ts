/** --exclude-from, against the real program: rules from files, read again while it runs. */
import assert from "node:assert/strict";
import {
  listTree,
  logHas,
  logLines,
  runOnce,
  startLoop,
  waitFor,
  withWork,
  writeFile,
} from "../helpers.ts";

const exists = (path: string) => {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
};

Deno.test("--exclude-from: a file of gitignore rules, before --exclude; '+ '/'- ' are names", async () => {
  await withWork(async (work) => {
    for (
      const path of [
        "a.log",
        "keep.log",
        "deep/b.log",
        "notes.txt",
        "- notes.txt",
        "cache/x",
        ".rules",
      ]
    ) writeFile(`${work}/src/${path}`, path);
    writeFile(`${work}/rep/old.log`, "replica only, excluded: stays");
    // Relative to the working folder; comments, a negation, CRLF, rsync's "- " prefix.
    writeFile(`${work}/rules`, "# build noise\r\n*.log\r\n!keep.log\r\n- notes.txt\r\n");
    // Inside the source: allowed, and mirrored like any file.
    writeFile(`${work}/src/.rules`, "cache/\n");
    const result = await runOnce(
      work,
      "--exclude-from",
      "rules",
      "--exclude-from",
      "src/.rules",
      "--exclude",
      "!deep/b.log",
    );
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual([...listTree(`${work}/rep`).keys()].sort(), [
      ".rules",
      "deep",
      "deep/b.log",
      "keep.log",
      "notes.txt",
      "old.log",
    ]);
  });
});

Deno.test("--exclude-from: a missing, binary or non-regular file is refused at start (exit 2)", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    Deno.writeFileSync(`${work}/binary`, new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 0, 1]));
    for (
      const [file, why] of [
        ["missing", /cannot use 'missing': No such file or directory/],
        ["binary", /cannot use 'binary': a binary file: it holds a NUL byte\.$/],
        ["src", /cannot use 'src': not a regular file\.$/],
      ] as const
    ) {
      const result = await runOnce(work, "--exclude-from", file);
      assert.equal(result.code, 2);
      assert.equal(result.stdout, "");
      const lines = result.stderr.trim().split("\n");
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0]!, /^folder-mirror: --exclude-from: /);
      assert.match(lines[0]!, why);
      assert.ok(!exists(`${work}/rep`) && !exists(`${work}/log.txt`), "nothing touched");
    }
  });
});

Deno.test("--exclude-from: a running mirror reads the file again when it changes; a bad one keeps the old rules", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.tmp`, "a");
    writeFile(`${work}/src/b.log`, "b");
    writeFile(`${work}/src/c.txt`, "c");
    writeFile(`${work}/rules`, "*.tmp\n");
    const loop = startLoop(work, "0.2", "--exclude-from", "rules");
    let output: Deno.CommandOutput | undefined;
    try {
      await waitFor("first cycle", () => exists(`${work}/rep/c.txt`));
      assert.ok(exists(`${work}/rep/b.log`) && !exists(`${work}/rep/a.tmp`));

      // New rules: a.tmp is let in, b.log is left out (its replica copy stays, no longer updated).
      writeFile(`${work}/rules`, "*.log\n");
      await waitFor("a.tmp let in", () => exists(`${work}/rep/a.tmp`));
      await waitFor(
        "the INFO line",
        logHas(work, "Exclude file rules was read again; its rules apply from this cycle on."),
      );
      writeFile(`${work}/src/b.log`, "b, changed");
      writeFile(`${work}/src/d.txt`, "d"); // a later cycle than the edit
      await waitFor("d.txt", () => exists(`${work}/rep/d.txt`));
      assert.equal(Deno.readTextFileSync(`${work}/rep/b.log`), "b");

      // Malformed: one WARNING; the old rules (*.log) stay in force.
      Deno.writeFileSync(`${work}/rules`, new Uint8Array([0x2a, 0, 0x0a]));
      await waitFor("the WARNING", logHas(work, /\[WARNING\]: Exclude file rules cannot be used/));
      writeFile(`${work}/src/e.log`, "e");
      writeFile(`${work}/src/f.txt`, "f");
      await waitFor("f.txt", () => exists(`${work}/rep/f.txt`));
      writeFile(`${work}/src/g.txt`, "g");
      await waitFor("g.txt", () => exists(`${work}/rep/g.txt`));
      assert.ok(!exists(`${work}/rep/e.log`), "the old rules still hold");
    } finally {
      output = await loop.stop();
    }
    assert.equal(output.code, 0);
    const warnings = logLines(`${work}/log.txt`).filter((line) => line.includes("[WARNING]"));
    assert.deepEqual(
      warnings.map((line) => line.replace(/^.*?\]: /, "")),
      [
        "Exclude file rules cannot be used (a binary file: it holds a NUL byte); its previous " +
        "rules stay in force.",
      ],
      "said once, not every cycle",
    );
  });
});

Deno.test("--exclude-from --watch: changed rules hold from the next partial cycle", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/first.txt`, "first");
    writeFile(`${work}/rules`, "*.tmp\n");
    // A full cycle every minute: only partial cycles run within this test.
    const loop = startLoop(work, "60", "--watch", "--exclude-from", "rules");
    try {
      await waitFor("first cycle", logHas(work, /Cycle finished/));
      writeFile(`${work}/rules`, "*.log\n");
      writeFile(`${work}/src/x.tmp`, "x");
      writeFile(`${work}/src/x.log`, "x");
      await waitFor("x.tmp let in", () => exists(`${work}/rep/x.tmp`));
      writeFile(`${work}/src/y.txt`, "y");
      await waitFor("y.txt", () => exists(`${work}/rep/y.txt`));
      assert.ok(!exists(`${work}/rep/x.log`));
      assert.equal(
        logLines(`${work}/log.txt`).filter((l) => l.includes("Cycle finished")).length,
        1,
      );
    } finally {
      assert.equal((await loop.stop()).code, 0);
    }
  });
});

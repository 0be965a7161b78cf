/** --verify and the tree digest, against the real program and the README's recipe. */
import assert from "node:assert/strict";
import { formatTimestamp } from "../../lib/core/text.ts";
import {
  afterCtimeSecond,
  IS_ROOT,
  logHas,
  logLines,
  runMirror,
  runOnce,
  runOnceUnder,
  startLoop,
  succeeds,
  waitFor,
  withoutRootOverrides,
  withWork,
  writeFile,
} from "../helpers.ts";

/** The README's Python recipe for the tree digest, run on `root`. */
function recipeDigest(root: string): string {
  const readme = Deno.readTextFileSync(new URL("../../README.md", import.meta.url));
  const code = readme.split("<!-- tree-digest-recipe -->")[1]!.split("```python\n")[1]!
    .split("\n```")[0]!;
  const output = new Deno.Command("python3", { args: ["-c", code, root] }).outputSync();
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
  return new TextDecoder().decode(output.stdout).trim();
}

function verify(work: string) {
  return runMirror(["--source", "src", "--replica", "rep", "--verify"], work);
}

function build(src: string): void {
  Deno.mkdirSync(`${src}/docs/deep`, { recursive: true });
  Deno.writeTextFileSync(`${src}/docs/a.txt`, "alpha");
  Deno.writeTextFileSync(`${src}/docs/deep/b.txt`, "beta");
  Deno.writeTextFileSync(`${src}/new\nline`, "odd name");
  Deno.writeTextFileSync(`${src}/back\\slash`, "odd name too");
  Deno.writeTextFileSync(`${src}/日本語`, "unicode");
  Deno.chmodSync(`${src}/docs/a.txt`, 0o640);
  Deno.mkdirSync(`${src}/empty`);
  Deno.chmodSync(`${src}/empty`, 0o700);
  Deno.symlinkSync("docs/a.txt", `${src}/link`);
  Deno.symlinkSync("nowhere\nat all", `${src}/dangling`);
}

Deno.test({
  name: "--verify: identical trees exit 0 with equal digests that the README's recipe reproduces",
  ignore: !succeeds("python3", "--version"), // the recipe is Python
  fn: async () => {
    await withWork(async (work) => {
      build(`${work}/src`);
      assert.equal((await runOnce(work)).code, 0);
      const result = await verify(work);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      const lines = result.stdout.trim().split("\n");
      assert.equal(lines.at(-1), "identical");
      const digest = (side: string) =>
        lines.find((line) => line.startsWith(`${side} tree digest: `))!.split(": ")[1];
      assert.match(digest("source")!, /^[0-9a-f]{32}$/);
      assert.equal(digest("source"), digest("replica"));
      assert.equal(digest("source"), recipeDigest(`${work}/src`));
      assert.equal(digest("replica"), recipeDigest(`${work}/rep`));
    });
  },
});

Deno.test("--verify: reports every difference, changes nothing, exits 1", async () => {
  await withWork(async (work) => {
    build(`${work}/src`);
    await runOnce(work);
    const rep = `${work}/rep`;
    Deno.writeTextFileSync(`${rep}/docs/a.txt`, "ALPHA"); // same size
    Deno.utimeSync(`${rep}/docs/a.txt`, 0, 0);
    Deno.chmodSync(`${rep}/empty`, 0o755);
    Deno.removeSync(`${rep}/docs/deep/b.txt`);
    Deno.writeTextFileSync(`${rep}/extra.txt`, "extra");
    Deno.removeSync(`${rep}/link`);
    Deno.symlinkSync("elsewhere", `${rep}/link`);
    const before = JSON.stringify([...Deno.readDirSync(rep)].map((e) => e.name).sort());
    const result = await verify(work);
    assert.equal(result.code, 1);
    const lines = result.stdout.trim().split("\n");
    for (
      const expected of [
        "content differs: file docs/a.txt",
        `mtime differs: file docs/a.txt (${
          formatTimestamp(Deno.statSync(`${work}/src/docs/a.txt`).mtime!.getTime())
        } vs ${formatTimestamp(0)})`,
        `mtime differs: folder docs/deep (${
          formatTimestamp(Deno.statSync(`${work}/src/docs/deep`).mtime!.getTime())
        } vs ${formatTimestamp(Deno.statSync(`${rep}/docs/deep`).mtime!.getTime())})`,
        "only in source: file docs/deep/b.txt",
        "mode differs: folder empty (0700 vs 0755)",
        "only in replica: file extra.txt",
        "link differs: symlink link (docs/a.txt vs elsewhere)",
      ]
    ) assert.ok(lines.includes(expected), `missing "${expected}" in\n${result.stdout}`);
    // The new link's own mtime differs too: symlinks keep theirs.
    assert.ok(lines.some((l) => l.startsWith("mtime differs: symlink link (")), result.stdout);
    assert.equal(lines.at(-1), "8 differences");
    assert.equal(JSON.stringify([...Deno.readDirSync(rep)].map((e) => e.name).sort()), before);
    const src = lines.find((l) => l.startsWith("source tree digest"));
    const dst = lines.find((l) => l.startsWith("replica tree digest"));
    assert.notEqual(src!.split(": ")[1], dst!.split(": ")[1]);
  });
});

Deno.test("a cycle that changed something logs the source's tree digest, as --verify computes it", async () => {
  await withWork(async (work) => {
    build(`${work}/src`);
    await runOnce(work);
    const summary = Deno.readTextFileSync(`${work}/log.txt`).trim().split("\n").at(-1)!;
    const logged = summary.match(/source tree digest ([0-9a-f]{32})\.$/)?.[1];
    const verified = (await verify(work)).stdout.match(/source tree digest: ([0-9a-f]{32})/)?.[1];
    assert.ok(logged !== undefined, summary);
    assert.equal(logged, verified);
  });
});

Deno.test("a cycle that copied more than the digest's reading budget says the digest was not computed", async () => {
  await withWork(async (work) => {
    Deno.mkdirSync(`${work}/src/many`);
    for (let i = 0; i <= 2000; i++) Deno.writeTextFileSync(`${work}/src/many/f${i}`, "x");
    assert.equal((await runOnce(work)).code, 0);
    const summary = Deno.readTextFileSync(`${work}/log.txt`).trim().split("\n").at(-1)!;
    assert.match(
      summary,
      /; source tree digest not computed \(too much to read; --verify computes it\)\.$/,
    );
  });
});

Deno.test({
  name: "a source that could not be read in full gets no digest: the summary says why (#18)",
  ignore: withoutRootOverrides() === undefined, // needs setpriv (util-linux)
  fn: async () => {
    await withWork(async (work) => {
      writeFile(`${work}/src/open.txt`, "o");
      writeFile(`${work}/src/closed/inside.txt`, "i");
      Deno.chmodSync(`${work}/src/closed`, 0o000);
      const partly = await runOnceUnder(withoutRootOverrides(), work);
      assert.equal(partly.code, 0, partly.stderr); // a folder it may not read: a WARNING
      assert.match(
        logLines(`${work}/log.txt`).at(-1)!,
        /; source tree digest not computed \(the source could not be read in full\)\.$/,
      );
      Deno.chmodSync(`${work}/src/closed`, 0o755);
      Deno.chmodSync(`${work}/src`, 0o000);
      const none = await runOnceUnder(withoutRootOverrides(), work);
      Deno.chmodSync(`${work}/src`, 0o755);
      assert.equal(none.code, 1);
      const summary = logLines(`${work}/log.txt`).at(-1)!;
      assert.doesNotMatch(summary, /d41d8cd98f00b204e9800998ecf8427e/, "not the empty tree's");
      assert.match(summary, /source tree digest not computed \(the source could not be read/);
    });
  },
});

Deno.test("a digest too big to read is said once a run, and given once it is within reach (#18)", async () => {
  await withWork(async (work) => {
    // 2,001 files copied by the kernel: more than the 2,000 a cycle reads for its digest.
    for (let d = 0; d < 3; d++) {
      for (let i = 0; i < 667; i++) writeFile(`${work}/src/d${d}/f${i}`, `${d}`);
    }
    // Settled: the copies are recorded as they are made (else compared, and hashed, next cycle).
    await afterCtimeSecond(`${work}/src/d2/f666`);
    const loop = startLoop(work, "0.2");
    try {
      await waitFor("the first summary", logHas(work, / Cycle finished: 2001 copied/), 30_000);
      writeFile(`${work}/src/one.txt`, "one"); // still too much: the summary says nothing of it
      await waitFor(
        "a second summary",
        () => logLines(`${work}/log.txt`).filter((l) => l.includes("Cycle finished")).length >= 2,
      );
    } finally {
      assert.equal((await loop.stop()).code, 0);
    }
    const summaries = logLines(`${work}/log.txt`).filter((l) => l.includes("Cycle finished"));
    assert.match(
      summaries[0]!,
      /; source tree digest not computed \(too much to read; --verify computes it\)\.$/,
    );
    assert.match(summaries[1]!, / s\.$/, "said once a run");
    // 2,000 unknown: within reach, read and given.
    Deno.removeSync(`${work}/src/d0/f0`);
    Deno.removeSync(`${work}/src/one.txt`);
    assert.equal((await runOnce(work)).code, 0);
    const logged = logLines(`${work}/log.txt`).at(-1)!.match(/source tree digest ([0-9a-f]{32})\.$/)
      ?.[1];
    const verified = (await verify(work)).stdout.match(/source tree digest: ([0-9a-f]{32})/)?.[1];
    assert.ok(logged !== undefined);
    assert.equal(logged, verified);
  });
});

Deno.test("--verify: reports what a cycle would change: owners (as root), an extra FIFO, a symlink's mtime (#18)", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    Deno.symlinkSync("a.txt", `${work}/src/link`);
    assert.equal((await runOnce(work)).code, 0);
    assert.equal((await verify(work)).code, 0);
    const rep = `${work}/rep`;
    assert.ok(succeeds("mkfifo", `${rep}/pipe`));
    new Deno.Command("touch", { args: ["-h", "-d", "2001-01-01", `${rep}/link`] }).outputSync();
    const root = IS_ROOT;
    if (root) Deno.chownSync(`${rep}/a.txt`, 1234, 5678);
    // Deno tells the user id only with --allow-sys=uid: then owners are compared.
    const result = await runMirror(
      ["--source", "src", "--replica", "rep", "--verify"],
      work,
      [],
      ["--allow-sys=uid"],
    );
    assert.equal(result.code, 1, result.stdout);
    const lines = result.stdout.trim().split("\n");
    assert.ok(lines.includes("only in replica: special file pipe"), result.stdout);
    assert.ok(lines.some((l) => l.startsWith("mtime differs: symlink link (")), result.stdout);
    if (root) {
      assert.ok(lines.some((l) => /^owner differs: file a\.txt \(0:0 vs 1234:5678\)$/.test(l)));
    }
    // The next cycle changes exactly that: then --verify finds nothing.
    assert.equal((await runOnce(work)).code, 0);
    const after = await verify(work);
    assert.equal(after.code, 0, after.stdout);
  });
});

Deno.test("symlinks keep their own mtime; one changed in the replica is put back (#18)", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/deep/er/a.txt`, "a");
    Deno.symlinkSync("a.txt", `${work}/src/deep/er/link`);
    new Deno.Command("touch", { args: ["-h", "-d", "2011-11-11", `${work}/src/deep/er/link`] })
      .outputSync();
    assert.equal((await runOnce(work)).code, 0);
    const mtime = (path: string) => Deno.lstatSync(path).mtime!.getTime();
    assert.equal(mtime(`${work}/rep/deep/er/link`), mtime(`${work}/src/deep/er/link`));
    new Deno.Command("touch", { args: ["-h", "-d", "2001-01-01", `${work}/rep/deep/er/link`] })
      .outputSync();
    assert.equal((await runOnce(work)).code, 0);
    assert.ok(logHas(work, "Attributes of symlink deep/er/link have been updated.")());
    assert.equal(mtime(`${work}/rep/deep/er/link`), mtime(`${work}/src/deep/er/link`));
  });
});

/** The operator's flags: --dry-run and --exclude, against the real program. */
import assert from "node:assert/strict";
import {
  assertMirrored,
  listTree,
  logHas,
  logLines,
  MAIN,
  messagesSince,
  mirrorCommand,
  PAIR,
  runMirror,
  runOnce,
  snapshot,
  startLoop,
  succeeds,
  waitFor,
  withWork,
  writeFile,
} from "../helpers.ts";

const messages = (work: string) => messagesSince(work);

Deno.test("--dry-run: logs what it would do, creates nothing (not even the replica), exits 0", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    writeFile(`${work}/src/d/b.txt`, "b");
    Deno.symlinkSync("a.txt", `${work}/src/link`);
    const result = await runOnce(work, "--dry-run");
    assert.equal(result.code, 0, result.stderr);
    assert.throws(() => Deno.statSync(`${work}/rep`), Deno.errors.NotFound);
    const log = messages(work);
    for (
      const expected of [
        "Would create replica folder rep.",
        "Would copy file a.txt.",
        "Would create folder d.",
        "Would copy file d/b.txt.",
        "Would create symlink link.",
        "Dry run finished: 5 actions would be taken, 0 failed; nothing was changed.",
      ]
    ) assert.ok(log.includes(expected), `missing "${expected}" in\n${log.join("\n")}`);
    assert.deepEqual([...Deno.readDirSync(work)].map((e) => e.name).sort(), ["log.txt", "src"]);
  });
});

Deno.test("--dry-run: on an existing replica, every kind of change is logged and none made", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/same.txt`, "same");
    writeFile(`${work}/src/changed.txt`, "new content");
    writeFile(`${work}/src/was-a-dir`, "now a file");
    Deno.chmodSync(`${work}/src/same.txt`, 0o600);
    await runOnce(work);
    writeFile(`${work}/rep/changed.txt`, "old");
    writeFile(`${work}/rep/extra/inside.txt`, "x");
    Deno.removeSync(`${work}/rep/was-a-dir`);
    writeFile(`${work}/rep/was-a-dir/old.txt`, "x");
    Deno.chmodSync(`${work}/rep/same.txt`, 0o644);
    writeFile(`${work}/rep/.mirror.tmp.0123456789abcdef`, "stale");
    writeFile(`${work}/rep/.mirror.index`, JSON.stringify({ version: 1, pairs: [] }));
    const before = snapshot(`${work}/rep`);
    const indexBefore = Deno.readTextFileSync(`${work}/rep/.mirror.index`);
    const mark = logLines(`${work}/log.txt`).length;
    const result = await runOnce(work, "--dry-run");
    assert.equal(result.code, 0, result.stderr);
    assert.equal(snapshot(`${work}/rep`), before);
    assert.equal(Deno.readTextFileSync(`${work}/rep/.mirror.index`), indexBefore);
    assert.ok(Deno.statSync(`${work}/rep/.mirror.tmp.0123456789abcdef`).isFile);
    const log = messages(work).slice(mark);
    for (
      const expected of [
        "Would update file changed.txt.",
        "Would remove folder extra.",
        "Would remove folder was-a-dir.",
        "Would copy file was-a-dir.",
        "Would update the attributes of file same.txt.",
        "Would remove file .mirror.tmp.0123456789abcdef.",
      ]
    ) assert.ok(log.includes(expected), `missing "${expected}" in\n${log.join("\n")}`);
    assert.ok(!log.some((line) => line.includes("has been")), log.join("\n"));
  });
});

Deno.test("--exclude: gitignore-style patterns are neither copied nor deleted", async () => {
  await withWork(async (work) => {
    for (
      const path of [
        "keep.txt",
        "a.tmp",
        "deep/b.tmp",
        "node_modules/pkg/index.js",
        "web/node_modules/m.js",
        "web/app.js",
        "build/out.js",
        "src/build/kept.js",
        "node_modules.txt",
      ]
    ) writeFile(`${work}/src/${path}`, path);
    writeFile(`${work}/rep/old.tmp`, "replica only, excluded: stays");
    writeFile(`${work}/rep/node_modules/stale.js`, "stays");
    writeFile(`${work}/rep/gone.txt`, "not excluded: removed");
    const result = await runOnce(
      work,
      "--exclude",
      "*.tmp",
      "--exclude",
      "node_modules/",
      "--exclude",
      "/build",
    );
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual([...listTree(`${work}/rep`).keys()].sort(), [
      "deep",
      "keep.txt",
      "node_modules",
      "node_modules.txt",
      "node_modules/stale.js",
      "old.tmp",
      "src",
      "src/build",
      "src/build/kept.js",
      "web",
      "web/app.js",
    ]);
  });
});

Deno.test("--exclude: a folder removed from the source keeps its excluded entries in the replica", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/d/a`, "a");
    writeFile(`${work}/src/d/sub/b`, "b");
    writeFile(`${work}/src/e/c`, "c");
    writeFile(`${work}/rep/d/x.tmp`, "excluded: stays");
    writeFile(`${work}/rep/d/sub/deeper/y.tmp`, "excluded: stays");
    writeFile(`${work}/rep/e/z.tmp`, "excluded: stays");
    const exclude = ["--exclude", "*.tmp"];
    assert.equal((await runOnce(work, ...exclude)).code, 0);
    Deno.removeSync(`${work}/src/d`, { recursive: true });
    Deno.removeSync(`${work}/src/e`, { recursive: true });
    writeFile(`${work}/src/e`, "now a file"); // where the replica keeps a folder
    const result = await runOnce(work, ...exclude);
    assert.deepEqual([...listTree(`${work}/rep`).keys()].sort(), [
      "d",
      "d/sub",
      "d/sub/deeper",
      "d/sub/deeper/y.tmp",
      "d/x.tmp",
      "e",
      "e/z.tmp",
    ]);
    const lines = messages(work).slice(-7);
    assert.ok(lines.includes("File d/a has been removed."), lines.join("\n"));
    assert.ok(lines.includes("File d/sub/b has been removed."), lines.join("\n"));
    assert.ok(lines.includes(
      "Folder d was kept: it holds excluded entries (its other contents were removed).",
    ));
    assert.ok(lines.includes(
      "Folder e was kept: it holds excluded entries, so the source's file e is not mirrored.",
    ));
    assert.equal(lines.filter((line) => line.includes("was kept")).length, 3, lines.join("\n"));
    assert.equal(result.code, 0, "a kept folder is not a failure");
    // Nothing more to remove: the next cycle says nothing about d.
    const again = await runOnce(work, ...exclude);
    assert.doesNotMatch(again.stdout, /Folder d /);
  });
});

Deno.test("--exclude --watch: a folder removed from the source keeps its excluded entries", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/d/a`, "a");
    writeFile(`${work}/rep/d/x.tmp`, "excluded: stays");
    const loop = startLoop(work, "60", "--watch", "--exclude", "*.tmp");
    try {
      await waitFor("first cycle", logHas(work, /Cycle finished/));
      Deno.removeSync(`${work}/src/d`, { recursive: true });
      await waitFor("the partial cycle", logHas(work, "File d/a has been removed."));
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual([...listTree(`${work}/rep`).keys()].sort(), ["d", "d/x.tmp"]);
    } finally {
      assert.equal((await loop.stop()).code, 0);
    }
  });
});

Deno.test("--help says excluded paths are not deleted, and --dry-run with --watch is refused", async () => {
  await withWork(async (work) => {
    const help = await runMirror(["--help"], work);
    assert.match(
      help.stdout.replace(/\s+/g, " "),
      /--exclude\].*pattern of paths neither copied nor deleted/,
    );
    const refused = await runMirror(["--dry-run", "--watch"], work);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--watch and --dry-run cannot be combined/);
  });
});

Deno.test("--log-format json: one JSON object a line in the file; the console stays text", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/d/a.txt`, "abc");
    const result = await runOnce(work, "--log-format", "json");
    assert.equal(result.code, 0);
    const records = logLines(`${work}/log.txt`).map((line) => JSON.parse(line));
    assert.deepEqual(records.find((r) => r.action === "copy"), {
      time: records.find((r) => r.action === "copy").time,
      level: "INFO",
      message: "File d/a.txt has been copied.",
      action: "copy",
      path: "d/a.txt",
      bytes: 3,
    });
    for (const record of records) {
      assert.match(record.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.ok(["INFO", "WARNING", "ERROR"].includes(record.level));
    }
    assert.match(result.stdout, /\[INFO\]: File d\/a\.txt has been copied\.\n/);
  });
});

Deno.test("--quiet and --verbose change the console only; the log file keeps INFO and up", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    const quiet = await runOnce(work, "--quiet");
    assert.equal(quiet.code, 0);
    assert.equal(quiet.stdout, "");
    assert.ok(messages(work).includes("File a.txt has been copied."));
    writeFile(`${work}/src/b.txt`, "b");
    const verbose = await runOnce(work, "--verbose");
    assert.match(verbose.stdout, /\[DEBUG\]: File a\.txt is unchanged\.\n/);
    assert.match(verbose.stdout, /\[INFO\]: File b\.txt has been copied\.\n/);
    assert.ok(!messages(work).some((line) => line.includes("unchanged")));
    const both = await runOnce(work, "--quiet", "--verbose");
    assert.equal(both.code, 2);
  });
});

/**
 * Run the program under a pseudo-terminal (`script`) of `columns` columns,
 * returning what the terminal got; `redirect`: a shell redirection of the
 * program's stdout (`> out.txt`).
 */
function runOnTerminal(
  work: string,
  env: Record<string, string> = {},
  options: { columns?: number; redirect?: string } = {},
): string {
  const command = [Deno.execPath(), "run", "--allow-read", "--allow-write", "--no-prompt", MAIN]
    .concat(["--source", "src", "--replica", "rep", "--once"])
    .map((word) => `'${word}'`).join(" ");
  const output = new Deno.Command("script", {
    args: [
      "-qec",
      `stty cols ${options.columns ?? 200}; ${command} ${options.redirect ?? ""}`,
      "/dev/null",
    ],
    cwd: work,
    env,
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  return new TextDecoder().decode(output.stdout);
}

function bigTree(work: string, files = 150): void {
  const block = new Uint8Array(1_000_000);
  for (let i = 0; i < files; i++) {
    block[0] = i;
    Deno.mkdirSync(`${work}/src/d`, { recursive: true });
    Deno.writeFileSync(`${work}/src/d/f${i}.bin`, block);
  }
}

/** The bar's frames as the terminal got them: counts while the walk goes on, then totals. */
function frames(screen: string): { counts: string[]; totals: string[] } {
  // A frame ends at the next escape sequence.
  return {
    // deno-lint-ignore no-control-regex
    counts: [...screen.matchAll(/\d+ files copied \| [^|]+\| [^\x1b]*/g)].map((m) => m[0]),
    // deno-lint-ignore no-control-regex
    totals: [...screen.matchAll(/\d+% \| \d+\/\d+ files \| [^\x1b]*/g)].map((m) => m[0]),
  };
}

Deno.test({
  name: "progress: a bar on a terminal for a big cycle, coloured unless NO_COLOR, then cleared",
  ignore: !succeeds("script", "--version"), // needs script (util-linux) for a pseudo-terminal
  fn: async () => {
    await withWork((work) => {
      bigTree(work);
      const screen = runOnTerminal(work);
      const seen = frames(screen);
      assert.ok(seen.counts.length + seen.totals.length > 0, "a bar was drawn");
      // Totals only once the walk is over: they never move, and the time left is a time.
      for (const frame of seen.totals) {
        assert.match(
          frame,
          /\d+% \| \d+\/150 files \| [\d.]+ \w?B\/150\.0 MB \| .* (--|\d+[hms][\dms]*) left/,
        );
      }
      assert.doesNotMatch(screen, /NULL|ETA/);
      assert.ok(screen.includes("\x1b[36m") || seen.totals.length === 0, "coloured on a terminal");
      const last = Math.max(screen.lastIndexOf("/150 files"), screen.lastIndexOf("files copied"));
      assert.ok(
        screen.indexOf("\x1b[2K", last) > last || screen.indexOf("\x1b[0J", last) > last,
        "cleared at the end",
      );
      assert.ok(!Deno.readTextFileSync(`${work}/log.txt`).includes("files |"), "never in the log");
      Deno.removeSync(`${work}/rep`, { recursive: true });
      const plain = runOnTerminal(work, { NO_COLOR: "1" });
      assert.match(plain, /\/150 files|files copied/);
      assert.ok(!plain.includes("\x1b[36m"), "no colour with NO_COLOR");
    });
  },
});

Deno.test({
  name: "progress: INFO lines stay on stdout, whole, whatever the bar does (#18)",
  ignore: !succeeds("script", "--version"), // needs script (util-linux) for a pseudo-terminal
  fn: async () => {
    await withWork((work) => {
      bigTree(work, 400);
      // stdout redirected, stderr a 70-column terminal: no bar, every line in the file.
      const screen = runOnTerminal(work, {}, { columns: 70, redirect: "> out.txt" });
      const out = Deno.readTextFileSync(`${work}/out.txt`).trim().split("\n");
      const logged = logLines(`${work}/log.txt`);
      assert.equal(out.length, logged.length, "every INFO line reached stdout");
      assert.deepEqual(out, logged);
      assert.doesNotMatch(screen, /files copied|files \|/, "no bar: stdout is not a terminal");
      // stdout a 70-column terminal: lines are printed whole, wrapping as the terminal wraps.
      Deno.removeSync(`${work}/rep`, { recursive: true });
      const narrow = runOnTerminal(work, {}, { columns: 70 });
      assert.ok(!narrow.includes("\x1b[?7l"), "the terminal's wrapping is left on");
      const summary = logLines(`${work}/log.txt`).at(-1)!;
      assert.ok(summary.length > 70);
      assert.ok(narrow.includes(summary), "the long summary line reached the terminal whole");
    });
  },
});

Deno.test("progress: never on a pipe", async () => {
  await withWork(async (work) => {
    bigTree(work);
    const result = await runOnce(work);
    assert.equal(result.code, 0);
    assert.equal(result.stderr, "");
    assert.doesNotMatch(result.stdout, /files \|/);
  });
});

Deno.test("--exclude and --max-delete: replica-only folders surveyed out of the walk's order, no hang", async () => {
  await withWork(async (work) => {
    // The survey of a replica-only folder (b, x/b) reads it before the shared
    // folder that sorts first (a, x/a) is walked: the read-ahead must cope.
    for (const dir of ["a/s", "x/a/s"]) writeFile(`${work}/src/${dir}/f.txt`, dir);
    for (const dir of ["a/s", "x/a/s"]) writeFile(`${work}/rep/${dir}/f.txt`, dir);
    for (const dir of ["b/t", "x/b/t", "x/c"]) {
      writeFile(`${work}/rep/${dir}/g.txt`, "replica only");
    }
    for (const flags of [["--max-delete", "100"], ["--exclude", "*.tmp"]]) {
      const child = mirrorCommand([...PAIR, "--once", ...flags], work).spawn();
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const status = await child.status;
      clearTimeout(timer);
      assert.equal(status.code, 0, `${flags.join(" ")}: exit ${status.code} (killed after 30 s?)`);
      assertMirrored(`${work}/src`, `${work}/rep`);
      for (const dir of ["b/t", "x/b/t", "x/c"]) writeFile(`${work}/rep/${dir}/g.txt`, "again");
    }
  });
});

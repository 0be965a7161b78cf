/**
 * The state file and what it guards, end to end: the replica holds the
 * source and nothing else; guards hold across runs; one writer per replica;
 * a damaged or foreign state costs one WARNING; kill -9 while it is written.
 */
import assert from "node:assert/strict";
import {
  afterCtimeSecond,
  assertMirrored,
  canLoopMount,
  canMount,
  editKeepingMtime,
  listTree,
  logHas,
  logLines,
  LoopDisk,
  mirrorCommand,
  mirrored,
  mountTmpfs,
  PAIR,
  runMirror,
  runOnce,
  snapshot,
  startLoop,
  waitFor,
  withWork,
  writeFile,
} from "../helpers.ts";
import { MirrorState } from "../../lib/state/state.ts";
import { entryFromInfo } from "../../lib/core/entry.ts";

const realPath = (path: string) => Deno.realPathSync(path);

const settle = () => new Promise((resolve) => setTimeout(resolve, 1100)); // ctimes: whole seconds

/** Messages (text after `]: `) of the log lines from line `from` on. */
function messagesFrom(work: string, from: number): string[] {
  return logLines(`${work}/log.txt`).slice(from).map((line) => line.slice(line.indexOf("]: ") + 3));
}

Deno.test("state: the replica holds the source's entries and nothing else, after cycles that hash", async () => {
  await withWork(async (work) => {
    for (let i = 0; i < 5; i++) writeFile(`${work}/src/d/f${i}.txt`, `content ${i}`);
    assert.equal((await runOnce(work)).code, 0);
    await settle();
    editKeepingMtime(`${work}/src/d/f1.txt`, "CONTENT 1"); // same size, same mtime
    const result = await runOnce(work);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /File d\/f1\.txt has been updated\./);
    // Exactly the source's entries (listTree hides nothing).
    assert.deepEqual([...listTree(`${work}/rep`).keys()].sort(), [
      "d",
      "d/f0.txt",
      "d/f1.txt",
      "d/f2.txt",
      "d/f3.txt",
      "d/f4.txt",
    ]);
    assertMirrored(`${work}/src`, `${work}/rep`);
    assert.ok(Deno.statSync(`${work}/log.txt.state`).isFile, "the state lives beside the log");
    const verified = await runOnce(work, "--verify");
    assert.equal(verified.code, 0, verified.stdout);
  });
});

Deno.test("state: source entries named like the program's own files are mirrored", async () => {
  await withWork(async (work) => {
    const names = [
      ".mirror.index",
      ".mirror.tmp.0123456789ABCDEF",
      ".mirror.tmp.notes.txt",
      ".mirror.tmp.0123456789abcdef.0",
    ];
    for (const name of names) {
      writeFile(`${work}/src/${name}`, name);
      writeFile(`${work}/src/sub/${name}`, name);
    }
    assert.equal((await runOnce(work)).code, 0);
    assertMirrored(`${work}/src`, `${work}/rep`);
    const mark = logLines(`${work}/log.txt`).length;
    assert.equal((await runOnce(work)).code, 0);
    const second = messagesFrom(work, mark).slice(1); // after "Mirror started"
    assert.equal(second.length, 1, `a second run has nothing to do:\n${second.join("\n")}`);
    assert.match(second[0]!, /^Cycle finished: 0 copied, 0 updated, 0 linked, 0 removed, /);
    const verified = await runOnce(work, "--verify");
    assert.equal(verified.code, 0, verified.stdout);
    assert.match(verified.stdout, /identical/);
  });
});

Deno.test("state: an older version's .mirror.index and temp files are removed like any extra entry", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    writeFile(`${work}/rep/.mirror.index`, "an index of an older version");
    writeFile(`${work}/rep/d/.mirror.tmp.0123456789abcdef`, "an older version's temp file");
    const result = await runOnce(work);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /File \.mirror\.index has been removed\./);
    assert.match(result.stdout, /Folder d has been removed\./);
    assertMirrored(`${work}/src`, `${work}/rep`);
  });
});

Deno.test("state: --dry-run and --verify never write the state file", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    assert.equal((await runOnce(work, "--dry-run")).code, 0);
    assert.throws(() => Deno.statSync(`${work}/log.txt.state`), Deno.errors.NotFound);
    assert.equal((await runOnce(work)).code, 0);
    writeFile(`${work}/src/b.txt`, "b");
    const before = Deno.readFileSync(`${work}/log.txt.state`);
    assert.equal((await runOnce(work, "--dry-run")).code, 0);
    assert.equal((await runOnce(work, "--verify")).code, 1);
    assert.deepEqual(Deno.readFileSync(`${work}/log.txt.state`), before);
  });
});

Deno.test("state: --state-file chooses where it lives; inside either tree or on the log file it is refused", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    Deno.mkdirSync(`${work}/var`);
    assert.equal((await runOnce(work, "--state-file", "var/mirror.state")).code, 0);
    assert.ok(Deno.statSync(`${work}/var/mirror.state`).isFile);
    for (
      const [path, message] of [
        ["rep/s", /--state-file: 'rep\/s' is inside the replica folder/],
        ["src/s", /--state-file: 'src\/s' is inside the source folder/],
        ["log.txt", /--state-file: 'log.txt' is the log file/],
        ["nowhere/s", /--state-file: cannot open 'nowhere\/s'/],
      ] as const
    ) {
      const before = snapshot(work);
      const result = await runOnce(work, "--state-file", path);
      assert.equal(result.code, 2, path);
      assert.match(result.stderr.trim(), message);
      assert.equal(result.stderr.trim().split("\n").length, 1);
      assert.equal(snapshot(work), before, path);
    }
  });
});

Deno.test("state: a file that is not a state file is refused and left as it is", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    writeFile(`${work}/notes.txt`, "my notes, not a state");
    const result = await runOnce(work, "--state-file", "notes.txt");
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--state-file: 'notes.txt' is not a folder-mirror state file/);
    assert.equal(Deno.readTextFileSync(`${work}/notes.txt`), "my notes, not a state");
  });
});

Deno.test("state: a corrupt, a truncated and a foreign state file each cost one WARNING and a correct cycle", async () => {
  await withWork(async (work) => {
    for (let i = 0; i < 20; i++) writeFile(`${work}/src/f${i}`, `file ${i}`);
    assert.equal((await runOnce(work)).code, 0);
    const state = `${work}/log.txt.state`;
    const good = Deno.readFileSync(state);
    // A state of another pair: run the same log/state on other folders first.
    Deno.mkdirSync(`${work}/other`);
    const spoilers: [string, () => Promise<void> | void][] = [
      ["corrupt", () => {
        const bad = good.slice();
        for (let i = 50; i < bad.length; i += 97) bad[i]! ^= 0x5a; // both meta pages too
        Deno.writeFileSync(state, bad);
      }],
      ["truncated", () => Deno.writeFileSync(state, good.subarray(0, 5000))],
      ["foreign", async () => {
        const args = ["--source", "other", "--replica", "rep2", "--log-file", "log.txt", "--once"];
        assert.equal((await runMirror(args, work)).code, 0);
      }],
    ];
    for (const [name, spoil] of spoilers) {
      Deno.writeFileSync(state, good);
      writeFile(`${work}/src/new-${name}`, name);
      await spoil();
      const mark = logLines(`${work}/log.txt`).length;
      const result = await runOnce(work);
      assert.equal(result.code, 0, `${name}: ${result.stderr}`);
      const warnings = logLines(`${work}/log.txt`).slice(mark).filter((l) =>
        l.includes("[WARNING]")
      );
      assert.equal(warnings.length, 1, `${name}: ${warnings.join("\n")}`);
      assert.match(warnings[0]!, /The state file log\.txt\.state was set aside: .*starts afresh/);
      assertMirrored(`${work}/src`, `${work}/rep`);
      const again = await runOnce(work);
      assert.doesNotMatch(again.stderr, /WARNING/, `${name}: the next run trusts the new state`);
    }
  });
});

Deno.test({
  name:
    "state: an unmount between two --once runs deletes nothing; nor does a mirror started after it",
  ignore: !canMount(), // needs `mount -t tmpfs` (root)
  fn: async () => {
    await withWork(async (work) => {
      const unmount = mountTmpfs(`${work}/src`, "4m");
      try {
        writeFile(`${work}/src/docs/a.txt`, "precious");
        assert.equal((await runOnce(work)).code, 0);
        unmount(); // src is the empty mount point again: another folder
        const before = snapshot(`${work}/rep`);
        const once = await runOnce(work);
        assert.equal(once.code, 1, "a guard held deletions back");
        assert.match(
          once.stderr,
          /\[ERROR\]: Source folder .* is empty and is no longer the folder it was .*nothing was deleted\./,
        );
        assert.equal(snapshot(`${work}/rep`), before);
        // A service started after the disk failed to mount.
        const loop = startLoop(work, "0.2");
        try {
          await waitFor(
            "the guard in the loop",
            () =>
              logLines(`${work}/log.txt`).filter((l) => l.includes("nothing was deleted")).length >=
                3,
          );
          assert.equal(snapshot(`${work}/rep`), before);
        } finally {
          assert.equal((await loop.stop()).code, 0);
        }
      } finally {
        unmount();
      }
      // A source that really is a new, non-empty folder is mirrored as usual.
      writeFile(`${work}/src/new.txt`, "new");
      assert.equal((await runOnce(work)).code, 0);
      assertMirrored(`${work}/src`, `${work}/rep`);
    });
  },
});

Deno.test("state: a second instance on the same replica or state file exits 2; the first is unharmed", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    Deno.mkdirSync(`${work}/other`);
    writeFile(`${work}/other/b.txt`, "b");
    assert.equal((await runOnce(work)).code, 0); // the state file exists before the first starts
    const first = startLoop(work, "0.2");
    try {
      // Its start line is logged once it holds the replica and the state file.
      const started = () =>
        logLines(`${work}/log.txt`).filter((line) => line.includes("Mirror started")).length;
      await waitFor("the first to start", () => started() === 2);
      const cases: [string[], RegExp][] = [
        [ // the same command twice (a cron job that overlaps): the other process is named
          [...PAIR],
          new RegExp(
            `--replica: 'rep' is being written by another running mirror \\(pid ${first.child.pid}\\)\\.`,
          ),
        ],
        [
          ["--source", "other", "--replica", "rep", "--log-file", "other.log"],
          /--replica: 'rep' is being written by another running mirror\./,
        ],
        [
          ["--source", "other", "--replica", "rep2", "--log-file", "log.txt"],
          new RegExp(
            `--state-file: 'log.txt.state' is in use by another running mirror \\(pid ${first.child.pid}\\)\\.`,
          ),
        ],
      ];
      for (const [args, message] of cases) {
        for (const mode of [["--once"], ["--time-interval", "0.2"]]) {
          const result = await runMirror([...args, ...mode], work);
          assert.equal(result.code, 2, result.stdout + result.stderr);
          assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
          assert.match(result.stderr, message);
          assert.equal(result.stdout, "");
        }
      }
      assert.ok(!listTree(`${work}/rep`).has("b.txt"), "the second instance wrote nothing");
      writeFile(`${work}/src/later.txt`, "later");
      await waitFor("the first goes on", mirrored(work));
    } finally {
      assert.equal((await first.stop()).code, 0);
    }
    // The lock dies with its process: the next run is not blocked.
    assert.equal((await runOnce(work)).code, 0);
  });
});

Deno.test("state: a lock left by a killed run does not block the next one", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    const loop = startLoop(work, "0.2");
    await waitFor("first cycle", mirrored(work));
    await loop.stop("SIGKILL");
    const result = await runOnce(work);
    assert.equal(result.code, 0, result.stderr);
  });
});

Deno.test("state: kill -9 while the state file is written leaves a usable state", async () => {
  await withWork(async (work) => {
    // ~20,000 pairs: a state of a few MB, whose writing takes a while.
    for (let d = 0; d < 20; d++) {
      Deno.mkdirSync(`${work}/src/d${d}`, { recursive: true });
      for (let f = 0; f < 1000; f++) Deno.writeTextFileSync(`${work}/src/d${d}/f${f}`, `${d}/${f}`);
    }
    await settle();
    assert.equal((await runOnce(work)).code, 0);
    const state = `${work}/log.txt.state`;
    let killedWhileWriting = 0;
    for (let round = 0; round < 3; round++) {
      // Every cycle changes a file, so every cycle writes the whole state.
      const child = mirrorCommand(
        [...PAIR, "--time-interval", "0.05"],
        work,
      ).spawn();
      const finished = child.output();
      const mtime = () => Deno.statSync(state).mtime!.getTime();
      let seen = mtime();
      const deadline = Date.now() + 20_000;
      let edits = 0;
      // Kill as soon as the state file starts changing (after the start's own small write).
      while (Date.now() < deadline) {
        if (edits++ % 50 === 0) writeFile(`${work}/src/d0/f0`, `round ${round} edit ${edits}`);
        const now = mtime();
        if (now !== seen && Deno.statSync(state).size > 100_000) {
          seen = now;
          if (edits > 100) {
            child.kill("SIGKILL");
            killedWhileWriting++;
            break;
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      await finished;
      const mark = logLines(`${work}/log.txt`).length;
      const result = await runOnce(work);
      assert.equal(result.code, 0, result.stderr);
      // The only warning: the kill was an unclean stop (what it wrote last is compared).
      assert.deepEqual(
        logLines(`${work}/log.txt`).slice(mark).filter((l) => /WARNING|ERROR/.test(l))
          .filter((l) => !l.includes("[WARNING]: The last run did not end cleanly")),
        [],
        "the state written at the kill is the old or the new one",
      );
      assertMirrored(`${work}/src`, `${work}/rep`);
    }
    assert.ok(killedWhileWriting > 0);
  }, { tmpfs: "512m" }); // fast to fill where it can be mounted
});

/** The generation of the state file's newest meta page: how many commits it has had. */
function commits(path: string): number {
  const bytes = Deno.readFileSync(path);
  const at = (page: number) => new DataView(bytes.buffer, page * 16384).getFloat64(32, true); // see state_file.ts
  return Math.max(at(0), at(1));
}

Deno.test("state: a run of one cycle commits the state twice (its id at the start, all at its clean end), however much the cycle changed", async () => {
  await withWork(async (work) => {
    for (let i = 0; i < 20; i++) writeFile(`${work}/src/d${i % 4}/f${i}.txt`, `file ${i}`);
    assert.equal((await runOnce(work)).code, 0);
    await settle();
    for (const change of ["unchanged", "one file", "unchanged again"]) {
      if (change === "one file") {
        writeFile(`${work}/src/d1/new.txt`, "new");
        await settle(); // settled before its copy: the copy is recorded
      }
      const before = commits(`${work}/log.txt.state`);
      const result = await runOnce(work);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(commits(`${work}/log.txt.state`) - before, 2, change);
      if (change !== "one file") continue;
      // What the cycle learnt is in that run's last commit, and the run ended clean.
      const { state } = await MirrorState.open(`${work}/log.txt.state`, {
        source: realPath(`${work}/src`),
        replica: realPath(`${work}/rep`),
      }, { readOnly: true });
      const entry = entryFromInfo(Deno.lstatSync(`${work}/src/d1/new.txt`));
      assert.ok(state.index.knows("d1/new.txt", "source", entry), "the copy is in the state");
      assert.equal(state.recheckSince, undefined, "the run ended cleanly");
    }
  });
});

Deno.test("state: a stale temp file of an earlier run is removed, whatever the cycle's guards", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    // A run that is killed with a temp file in the replica: its run id is in the state.
    assert.equal((await runOnce(work)).code, 0);
    const text = new TextDecoder("latin1").decode(Deno.readFileSync(`${work}/log.txt.state`));
    const runId = /"runs":\["([0-9a-f]{16})"/.exec(text)?.[1] ?? "";
    const temp = `.mirror.tmp.${runId}.7`;
    const roots = { source: realPath(`${work}/src`), replica: realPath(`${work}/rep`) };
    const { state } = await MirrorState.open(`${work}/log.txt.state`, roots, { readOnly: true });
    assert.ok(state.isTemp(temp), "the state knows that run");
    writeFile(`${work}/rep/${temp}`, "half a file");
    writeFile(`${work}/rep/extra.txt`, "to be removed, but --max-delete 0 holds it");
    const result = await runOnce(work, "--max-delete", "0");
    assert.equal(result.code, 1);
    assert.ok(result.stdout.includes(`File ${temp} has been removed.`), result.stdout);
    assert.ok(listTree(`${work}/rep`).has("extra.txt"));
    assert.ok(!listTree(`${work}/rep`).has(temp));
  });
});

Deno.test({
  name: "state: a full disk under the state file is one WARNING; the old state stays usable",
  ignore: !canMount(), // needs `mount -t tmpfs` (root)
  fn: async () => {
    await withWork(async (work) => {
      for (let i = 0; i < 3000; i++) writeFile(`${work}/src/d${i % 10}/f${i}`, `file ${i}`);
      await settle(); // settled: every copy is recorded, the state is big
      const unmount = mountTmpfs(`${work}/var`, "1m");
      try {
        // Leave room for the small part of the state, not for its index.
        Deno.writeFileSync(`${work}/var/filler`, new Uint8Array(950 * 1024));
        const args = ["--state-file", "var/state"];
        const result = await runOnce(work, ...args);
        assert.equal(result.code, 0, result.stderr);
        const warnings = result.stderr.trim().split("\n");
        assert.equal(warnings.length, 1, result.stderr);
        assert.match(
          warnings[0]!,
          /\[WARNING\]: Could not save the state file \(No space left on device/,
        );
        assertMirrored(`${work}/src`, `${work}/rep`);
        // Its copies settled: the next run records every pair again, and cannot save them
        // either (within the copies' second it would record fewer, and they might fit).
        await settle();
        const again = await runOnce(work, ...args);
        assert.equal(again.code, 0);
        assert.doesNotMatch(again.stderr, /set aside/, "the state written before is intact");
        Deno.removeSync(`${work}/var/filler`);
        const freed = await runOnce(work, ...args);
        assert.equal(freed.code, 0);
        // The run before could not record its clean end either: said once, then all is saved.
        assert.match(freed.stderr, /^[^\n]*\[WARNING\]: The last run did not end cleanly[^\n]*\n$/);
        const after = await runOnce(work, ...args);
        assert.equal(after.stderr, "", "saved once there is room");
      } finally {
        unmount();
      }
    });
  },
});

Deno.test({
  name:
    "state: after an unclean stop, what the run wrote last is compared by content (a power cut, #18)",
  ignore: !canLoopMount(), // needs root, losetup and mkfs.ext4 (e2fsprogs)
  fn: async () => {
    await withWork(async (work) => {
      const disk = new LoopDisk(`${work}/disk.img`, `${work}/rep`, "32M");
      try {
        writeFile(`${work}/src/deep/a.txt`, "precious data");
        writeFile(`${work}/src/b.txt`, "more precious data");
        /** A running mirror's first cycle, then a stop: SIGKILL (a crash) or SIGINT. */
        const cycleThen = async (signal: Deno.Signal) => {
          const loop = startLoop(work, "60");
          await waitFor("the cycle", logHas(work, /Cycle finished/));
          await new Promise((resolve) => setTimeout(resolve, 200)); // its state is committed
          await loop.stop(signal);
        };
        // Settled sources: their copies are recorded, trusted from then on.
        await afterCtimeSecond(`${work}/src/b.txt`);
        // A power cut: the data of a.txt never reached the disk, its metadata did.
        await cycleThen("SIGKILL");
        const before = Deno.statSync(`${work}/rep/deep/a.txt`);
        disk.zeroFile(`${work}/rep/deep/a.txt`);
        const after = Deno.statSync(`${work}/rep/deep/a.txt`);
        assert.deepEqual(
          [after.size, after.mtime, after.ctime, after.ino],
          [before.size, before.mtime, before.ctime, before.ino],
          "the stat key holds",
        );
        assert.notEqual(Deno.readTextFileSync(`${work}/rep/deep/a.txt`), "precious data");
        const mark = logLines(`${work}/log.txt`).length;
        const next = await runOnce(work);
        assert.equal(next.code, 0, next.stderr);
        const lines = logLines(`${work}/log.txt`).slice(mark);
        assert.ok(lines.some((l) => l.endsWith("File deep/a.txt has been updated.")));
        assert.ok(lines.some((l) => l.includes("[WARNING]: The last run did not end cleanly")));
        assertMirrored(`${work}/src`, `${work}/rep`);
        // The check is made once: the run after it trusts what it compared.
        const quiet = await runOnce(work);
        assert.equal(quiet.code, 0);
        assert.ok(!logLines(`${work}/log.txt`).at(-2)!.includes("did not end cleanly"));
        // The choice: after a clean stop the state is trusted as it is (no file is
        // read); only --verify would find a file the disk lost afterwards.
        Deno.writeTextFileSync(`${work}/src/b.txt`, "other precious data");
        await afterCtimeSecond(`${work}/src/b.txt`); // settled: the copy is recorded
        await cycleThen("SIGINT");
        disk.zeroFile(`${work}/rep/b.txt`);
        const trusted = await runOnce(work);
        assert.equal(trusted.code, 0);
        assert.notEqual(Deno.readTextFileSync(`${work}/rep/b.txt`), "other precious data");
        const verified = await runMirror(["--source", "src", "--replica", "rep", "--verify"], work);
        assert.equal(verified.code, 1);
        assert.match(verified.stdout, /content differs: file b\.txt/);
      } finally {
        disk.unmount();
        disk.detach();
      }
    });
  },
});

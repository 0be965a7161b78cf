/**
 * Never lose data: refusals, deletion guards, hostile replica symlinks and
 * faults, each against the real program on real folders.
 */
import assert from "node:assert/strict";
import {
  assertMirrored,
  canMount,
  copyUnderWay,
  listTree,
  logHas,
  logLines,
  messagesSince,
  mirrorCommand,
  mirrored,
  mountTmpfs,
  PAIR,
  runMirror,
  runOnce,
  runOnceUnder,
  snapshot,
  startLoop,
  startLoopUnder,
  waitFor,
  withoutRootOverrides,
  withWork,
  writeFile,
} from "../helpers.ts";

const refusals: [string, (work: string) => string[], RegExp][] = [
  [
    "the same folder",
    () => ["--source", "src", "--replica", "src"],
    /--replica: 'src' is the source folder itself/,
  ],
  [
    "the same folder spelled with ..",
    () => ["--source", "src", "--replica", "src/../src/"],
    /is the source folder itself/,
  ],
  ["the same folder through a symlink", (work) => {
    Deno.symlinkSync(`${work}/src`, `${work}/alias`);
    return ["--source", "src", "--replica", "alias"];
  }, /is the source folder itself/],
  [
    "a replica inside the source",
    () => ["--source", "src", "--replica", "src/copy"],
    /is inside the source folder/,
  ],
  ["a replica inside the source through a symlink", (work) => {
    Deno.symlinkSync(`${work}/src`, `${work}/alias`);
    return ["--source", "src", "--replica", "alias/new/copy"];
  }, /is inside the source folder/],
  ["a source inside the replica", (work) => {
    Deno.mkdirSync(`${work}/outer`);
    Deno.renameSync(`${work}/src`, `${work}/outer/src`);
    return ["--source", "outer/src", "--replica", "outer"];
  }, /contains the source folder/],
  [
    "a log file inside the replica",
    () => ["--source", "src", "--replica", "rep", "--log-file", "rep/log.txt"],
    /--log-file: 'rep\/log.txt' is inside the replica/,
  ],
  [
    "a log file inside the source",
    () => ["--source", "src", "--replica", "rep", "--log-file", "src/../src/log.txt"],
    /--log-file: .* is inside the source/,
  ],
  [
    "a state file inside the replica, with no log file (--log-file -)",
    () => ["--source", "src", "--replica", "rep", "--log-file", "-", "--state-file", "rep/st"],
    /--state-file: 'rep\/st' is inside the replica/,
  ],
  [
    "a state file inside the source, with no log file (--log-file -)",
    () => ["--source", "src", "--replica", "rep", "--log-file", "-", "--state-file", "src/st"],
    /--state-file: 'src\/st' is inside the source/,
  ],
  [
    "a missing source",
    () => ["--source", "nope", "--replica", "rep"],
    /--source: cannot use 'nope'/,
  ],
  ["a source that is a file", (work) => {
    writeFile(`${work}/file`, "f");
    return ["--source", "file", "--replica", "rep"];
  }, /--source: 'file' is not a folder/],
  [
    "a bad --max-delete",
    () => ["--source", "src", "--replica", "rep", "--max-delete", "-1"],
    /--max-delete/,
  ],
];

for (const [name, setup, message] of refusals) {
  Deno.test(`refuses ${name}: exit 2, one line, nothing changed`, async () => {
    await withWork(async (work) => {
      writeFile(`${work}/src/a.txt`, "a");
      const args = setup(work);
      const before = snapshot(work);
      const result = await runMirror([...args, "--once"], work);
      assert.equal(result.code, 2, result.stdout + result.stderr);
      assert.equal(result.stderr.trim().split("\n").length, 1);
      assert.match(result.stderr, message);
      assert.equal(snapshot(work), before);
    });
  });
}

Deno.test("a source that disappears during the loop: ERROR, nothing done, recovery when it returns", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    const loop = startLoop(work, "0.2");
    try {
      await waitFor("first cycle", mirrored(work));
      Deno.renameSync(`${work}/src`, `${work}/away`);
      // The source named as typed, not as an absolute path (#18).
      await waitFor(
        "the error",
        logHas(work, /\[ERROR\]: Source folder src is not usable \(.*\); nothing was done\.$/),
      );
      assert.equal(Deno.readTextFileSync(`${work}/rep/a.txt`), "a");
      writeFile(`${work}/away/b.txt`, "b");
      Deno.renameSync(`${work}/away`, `${work}/src`);
      await waitFor("recovery", mirrored(work));
      assert.ok(listTree(`${work}/rep`).has("b.txt"));
    } finally {
      assert.equal((await loop.stop()).code, 0);
    }
  });
});

Deno.test({
  name: "no deletion under a source folder that could not be read",
  ignore: withoutRootOverrides() === undefined, // needs setpriv (util-linux)
  fn: async () => {
    await withWork(async (work) => {
      Deno.mkdirSync(`${work}/src/closed`);
      writeFile(`${work}/src/closed/inside.txt`, "i");
      writeFile(`${work}/src/open.txt`, "o");
      await runOnce(work);
      Deno.chmodSync(`${work}/src/closed`, 0o000);
      writeFile(`${work}/src/new.txt`, "n");
      const result = await runOnceUnder(withoutRootOverrides(), work);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(Deno.readTextFileSync(`${work}/rep/closed/inside.txt`), "i");
      assert.equal(Deno.readTextFileSync(`${work}/rep/new.txt`), "n");
      assert.ok(
        logHas(
          work,
          /\[WARNING\]: Source folder closed may not be read \(.*[Pp]ermission denied.*\); it is left out, and its replica twin is neither read nor changed\.$/,
        )(),
      );
    });
  },
});

Deno.test({
  name:
    "a source folder of mode 000 (not root): one WARNING a run, its replica twin left alone (#18)",
  ignore: withoutRootOverrides() === undefined, // needs setpriv (util-linux)
  fn: async () => {
    await withWork(async (work) => {
      writeFile(`${work}/src/a/b/c/open.txt`, "o");
      Deno.mkdirSync(`${work}/src/a/b/c/locked`);
      Deno.chmodSync(`${work}/src/a/b/c/locked`, 0o000);
      const loop = startLoopUnder(withoutRootOverrides(), work, "0.1");
      try {
        await waitFor("the copy", () => {
          try {
            return Deno.readTextFileSync(`${work}/rep/a/b/c/open.txt`) === "o";
          } catch {
            return false;
          }
        });
        const cycles = () => logLines(`${work}/log.txt`).length;
        const before = cycles();
        writeFile(`${work}/src/a/b/c/more.txt`, "m");
        await waitFor("a few more cycles", () => cycles() > before);
        await new Promise((resolve) => setTimeout(resolve, 500));
      } finally {
        assert.equal((await loop.stop()).code, 0);
      }
      const lines = logLines(`${work}/log.txt`);
      assert.deepEqual(
        lines.filter((l) => l.includes("[ERROR]")),
        [],
        "no ERROR, cycle after cycle",
      );
      assert.equal(lines.filter((l) => l.includes("locked may not be read")).length, 1);
    });
  },
});

Deno.test({
  name: "an unmounted source disk (empty, new identity) deletes nothing",
  ignore: !canMount(), // needs `mount -t tmpfs` (root)
  fn: async () => {
    await withWork(async (work) => {
      const unmount = mountTmpfs(`${work}/src`, "4m");
      try {
        Deno.mkdirSync(`${work}/src/docs`);
        writeFile(`${work}/src/docs/a.txt`, "precious");
        const loop = startLoop(work, "0.2");
        try {
          await waitFor("first cycle", mirrored(work));
          unmount();
          await waitFor(
            "the guard",
            logHas(
              work,
              /\[ERROR\]: Source folder .* unmounted disk\?\); nothing was deleted\. If the source is meant to be empty, run once with --accept-empty-source\.$/,
            ),
          );
          const cycles = logLines(`${work}/log.txt`).filter((l) =>
            l.includes("nothing was deleted")
          ).length;
          await waitFor("another guarded cycle", () =>
            logLines(`${work}/log.txt`).filter((l) =>
              l.includes("nothing was deleted")
            ).length > cycles);
          assert.equal(Deno.readTextFileSync(`${work}/rep/docs/a.txt`), "precious");
        } finally {
          assert.equal((await loop.stop()).code, 0);
        }
      } finally {
        unmount();
      }
    });
  },
});

/** Ways a run can find no trusted record of the source root (#18). */
const lostRecords: [string, (work: string) => string[]][] = [
  ["the state file truncated to 0 bytes", (work) => {
    Deno.truncateSync(`${work}/log.txt.state`, 0);
    return [];
  }],
  ["the same command run from another working folder (the relative default state)", (work) => {
    Deno.mkdirSync(`${work}/elsewhere`);
    return ["--source", "../src", "--replica", "../rep", "--log-file", "log.txt"];
  }],
  ["7 bytes overwritten at offset 100 after exactly one earlier run", (work) => {
    const file = Deno.openSync(`${work}/log.txt.state`, { write: true });
    file.seekSync(100, Deno.SeekMode.Start);
    file.writeSync(new TextEncoder().encode("GARBAGE"));
    file.close();
    return [];
  }],
];

for (const [how, damage] of lostRecords) {
  Deno.test({
    name: `an empty source deletes nothing without a trusted record of it: ${how}`,
    ignore: !canMount(), // needs `mount -t tmpfs` (root)
    fn: async () => {
      await withWork(async (work) => {
        const unmount = mountTmpfs(`${work}/src`, "4m");
        try {
          writeFile(`${work}/src/f1`, "precious");
          writeFile(`${work}/src/d/f2`, "precious");
          assert.equal((await runOnce(work)).code, 0);
          unmount(); // the empty mount point shows
          const args = damage(work);
          const cwd = args.length > 0 ? `${work}/elsewhere` : work;
          const result = await runMirror(
            args.length > 0 ? [...args, "--once"] : [...PAIR, "--once"],
            cwd,
          );
          const log = Deno.readTextFileSync(`${cwd}/log.txt`);
          assert.equal(result.code, 1, result.stdout + result.stderr);
          // No record of this source folder: none at all, or one of the folder it was.
          assert.match(
            log,
            /\[ERROR\]: Source folder .* is empty(, the replica is not, and no earlier cycle recorded this folder as the source| and is no longer the folder it was) .*nothing was deleted\. If the source is meant to be empty, run once with --accept-empty-source\.\n/,
          );
          assert.doesNotMatch(log, /has been removed/);
          assert.equal(Deno.readTextFileSync(`${work}/rep/f1`), "precious");
          assert.equal(Deno.readTextFileSync(`${work}/rep/d/f2`), "precious");
          if (how.includes("truncated")) {
            assert.match(
              log,
              /\[WARNING\]: The state file .* was set aside: it is empty \(0 bytes\)/,
            );
          }
          if (how.includes("overwritten")) {
            assert.match(
              log,
              /\[WARNING\]: The state file .* has a damaged newest record \(.*\); the one before it is used/,
            );
          }
          // Run again: still refused (a refused cycle records nothing).
          const again = await runMirror(
            args.length > 0 ? [...args, "--once"] : [...PAIR, "--once"],
            cwd,
          );
          assert.equal(again.code, 1);
          assert.equal(Deno.readTextFileSync(`${work}/rep/f1`), "precious");
          // Accepted for one run: the replica is emptied, and the record then allows it.
          const accepted = await runMirror(
            [...(args.length > 0 ? args : PAIR), "--once", "--accept-empty-source"],
            cwd,
          );
          assert.equal(accepted.code, 0, accepted.stdout + accepted.stderr);
          assert.deepEqual([...Deno.readDirSync(`${work}/rep`)], []);
        } finally {
          unmount();
        }
      });
    },
  });
}

Deno.test("an emptied source folder (the same folder, recorded) empties the replica", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    assert.equal((await runOnce(work)).code, 0);
    Deno.removeSync(`${work}/src/a.txt`);
    const result = await runOnce(work);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual([...Deno.readDirSync(`${work}/rep`)], []);
  });
});

Deno.test("a first run from an empty source beside a full replica deletes nothing (exit 1)", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/rep/old.txt`, "old");
    const result = await runOnce(work);
    assert.equal(result.code, 1);
    assert.equal(Deno.readTextFileSync(`${work}/rep/old.txt`), "old");
    assert.ok(logHas(work, /no earlier cycle recorded this folder as the source/)());
  });
});

Deno.test("nested replicas: a mirror inside, or around, a running mirror's replica refuses (#18)", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/dir00/a.txt`, "a");
    writeFile(`${work}/other/b.txt`, "b");
    const real = Deno.realPathSync(work);
    for (
      const [first, second, message] of [
        ["rep", "rep/dir00", `is inside '${real}/rep', the replica of another running mirror`],
        ["rep/dir00", "rep", `contains '${real}/rep/dir00', the replica of another running mirror`],
      ]
    ) {
      if (listTree(work).has("rep")) Deno.removeSync(`${work}/rep`, { recursive: true });
      const child = mirrorCommand(
        ["--source", "src", "--replica", first!, "--log-file", "log.txt", "--time-interval", "60"],
        work,
      ).spawn();
      const finished = child.output();
      try {
        // Its first cycle over (its folders' attributes set last): nothing moves meanwhile.
        const mark = listTree(work).has("log.txt") ? messagesSince(work).length : 0;
        await waitFor(
          "the first mirror",
          () => messagesSince(work, mark).some((m) => m.startsWith("Cycle finished")),
        );
        const before = snapshot(`${work}/rep`);
        const refused = await runMirror(
          ["--source", "other", "--replica", second!, "--log-file", "other.log", "--once"],
          work,
        );
        assert.equal(refused.code, 2, refused.stdout + refused.stderr);
        assert.equal(refused.stderr.trim().split("\n").length, 1, refused.stderr);
        assert.ok(refused.stderr.includes(`--replica: '${second}' ${message}.`), refused.stderr);
        assert.equal(snapshot(`${work}/rep`), before, "nothing written");
      } finally {
        child.kill("SIGINT");
        assert.equal((await finished).code, 0);
      }
    }
  });
});

Deno.test("--max-delete: a cycle over the limit deletes nothing but still copies", async () => {
  await withWork(async (work) => {
    Deno.mkdirSync(`${work}/rep/old`, { recursive: true });
    for (const name of ["x", "y", "z"]) writeFile(`${work}/rep/old/${name}`, name); // 4 entries
    writeFile(`${work}/rep/stale.txt`, "s"); // 5
    writeFile(`${work}/src/new.txt`, "n");
    const over = await runOnce(work, "--max-delete", "4");
    assert.equal(over.code, 1);
    assert.ok(
      logHas(
        work,
        /\[ERROR\]: This cycle would delete 5 replica entries, more than --max-delete 4; nothing was deleted\.$/,
      )(),
    );
    assert.equal(listTree(`${work}/rep`).size, 6);
    assert.equal(Deno.readTextFileSync(`${work}/rep/new.txt`), "n");
    const within = await runOnce(work, "--max-delete", "5");
    assert.equal(within.code, 0);
    assertMirrored(`${work}/src`, `${work}/rep`);
  });
});

Deno.test("a replica symlink to an outside folder is replaced, and the outside folder is untouched", async () => {
  await withWork(async (work) => {
    Deno.mkdirSync(`${work}/outside/nested`, { recursive: true });
    writeFile(`${work}/outside/shared.txt`, "outside!"); // same size as the source's file
    writeFile(`${work}/outside/only-outside.txt`, "keep me");
    writeFile(`${work}/outside/nested/n.txt`, "n");
    writeFile(`${work}/outside/target.txt`, "outside file");
    Deno.mkdirSync(`${work}/src/dir`);
    writeFile(`${work}/src/dir/shared.txt`, "source!!");
    writeFile(`${work}/src/file.txt`, "source file!");
    Deno.mkdirSync(`${work}/rep`);
    Deno.symlinkSync(`${work}/outside`, `${work}/rep/dir`);
    Deno.symlinkSync(`${work}/outside/target.txt`, `${work}/rep/file.txt`);
    const before = snapshot(`${work}/outside`);
    const result = await runOnce(work);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(snapshot(`${work}/outside`), before);
    assert.ok(Deno.lstatSync(`${work}/rep/dir`).isDirectory);
    assertMirrored(`${work}/src`, `${work}/rep`);
  });
});

Deno.test("FIFOs, sockets and devices in the source are skipped with one WARNING, never opened", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    assert.ok(new Deno.Command("mkfifo", { args: [`${work}/src/pipe`] }).outputSync().success);
    // A bound Unix socket stays in the folder after python exits.
    const bind = `import socket; socket.socket(socket.AF_UNIX).bind("${work}/src/sock")`;
    assert.ok(new Deno.Command("python3", { args: ["-c", bind] }).outputSync().success);
    const hasDevice =
      new Deno.Command("mknod", { args: [`${work}/src/null`, "c", "1", "3"], stderr: "null" })
        .outputSync().success;
    const loop = startLoop(work, "0.2");
    try {
      await waitFor("a.txt", logHas(work, "File a.txt has been copied."));
      await new Promise((resolve) => setTimeout(resolve, 600)); // a few more cycles
    } finally {
      assert.equal((await loop.stop()).code, 0);
    }
    const warnings = logLines(`${work}/log.txt`).filter((l) => l.includes("[WARNING]"));
    const special = ["pipe", "sock", ...(hasDevice ? ["null"] : [])];
    assert.deepEqual(
      warnings.map((l) => l.split("]: ")[1]).sort(),
      special.map((name) => `Special file ${name} (FIFO, socket or device) is skipped.`).sort(),
    );
    assert.deepEqual([...listTree(`${work}/rep`).keys()], ["a.txt"]);
    // The summary counts them.
    const summary = logLines(`${work}/log.txt`).find((l) => l.includes("Cycle finished"));
    assert.match(summary ?? "", new RegExp(` ${special.length} warnings, `));
  });
});

Deno.test({
  name:
    "a full replica disk: ERROR for that file, no temp left, the rest mirrored, retried next run",
  ignore: !canMount(), // needs `mount -t tmpfs` (root)
  fn: async () => {
    await withWork(async (work) => {
      const unmount = mountTmpfs(`${work}/rep`, "1m");
      try {
        for (const name of ["a", "b", "c"]) writeFile(`${work}/src/${name}.txt`, name);
        Deno.writeFileSync(`${work}/src/big.bin`, new Uint8Array(2 * 1024 * 1024).fill(7));
        const full = await runOnce(work);
        assert.equal(full.code, 1);
        assert.ok(
          logHas(work, /\[ERROR\]: Could not copy file big\.bin: No space left on device/)(),
        );
        assert.deepEqual([...listTree(`${work}/rep`).keys()].sort(), ["a.txt", "b.txt", "c.txt"]);
        assert.ok(
          new Deno.Command("mount", { args: ["-o", "remount,size=8m", `${work}/rep`] }).outputSync()
            .success,
        );
        const retry = await runOnce(work);
        assert.equal(retry.code, 0, retry.stderr);
        assertMirrored(`${work}/src`, `${work}/rep`);
      } finally {
        unmount();
      }
    });
  },
});

Deno.test("a source file written to during copies never leaves a torn replica", async () => {
  await withWork(async (work) => {
    const path = `${work}/src/growing.log`;
    const chunk = new Uint8Array(256 * 1024).fill(65);
    Deno.writeFileSync(path, new Uint8Array(16 * 1024 * 1024).fill(66));
    const loop = startLoop(work, "0.05");
    try {
      const file = Deno.openSync(path, { append: true });
      const until = Date.now() + 1_500;
      for (let i = 0; Date.now() < until; i++) {
        chunk.fill(65 + (i % 26));
        file.writeSync(chunk);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      file.close();
      await waitFor("convergence after the writer stopped", mirrored(work), 20_000);
    } finally {
      assert.equal((await loop.stop()).code, 0);
    }
    assertMirrored(`${work}/src`, `${work}/rep`);
  });
});

/** Append a line to `path` every `everyMs` until the returned function is called. */
function appendEvery(path: string, everyMs: number): () => Promise<void> {
  const file = Deno.openSync(path, { append: true, create: true });
  let i = 0, running = true;
  const done = (async () => {
    while (running) {
      file.writeSync(new TextEncoder().encode(`line ${i++} ${"x".repeat(60)}\n`));
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
    file.close();
  })();
  return async () => {
    running = false;
    await done;
  };
}

Deno.test("a log appended to every 20 ms reaches the replica as what it held when listed (#18)", async () => {
  await withWork(async (work) => {
    const log = `${work}/src/deep/er/app.log`;
    Deno.mkdirSync(`${work}/src/deep/er`, { recursive: true });
    // Big enough that its copy outlasts the 20 ms between two appends.
    Deno.writeFileSync(log, new Uint8Array(48 << 20).fill(66));
    const stop = appendEvery(log, 20);
    const codes: number[] = [];
    try {
      for (let run = 0; run < 5; run++) {
        const result = await runOnce(work);
        codes.push(result.code);
        const copy = Deno.readFileSync(`${work}/rep/deep/er/app.log`);
        const now = Deno.readFileSync(log);
        assert.ok(copy.length <= now.length && copy.length >= 48 << 20);
        assert.deepEqual(now.subarray(0, copy.length), copy, "the copy is a prefix of the log");
      }
    } finally {
      await stop();
    }
    const lines = logLines(`${work}/log.txt`);
    assert.ok(
      lines.every((line) => !line.includes("app.log was not copied")),
      lines.filter((line) => line.includes("app.log")).join("\n"),
    );
    assert.ok(codes.every((code) => code === 0 || code === 24), `exit codes ${codes}`);
    const prefixes = lines.filter((line) =>
      /\[WARNING\]: File deep\/er\/app\.log was copied as its first \d+ bytes: it grew while being copied; the next cycle copies the rest\.$/
        .test(line)
    ).length;
    assert.equal(
      codes.filter((code) =>
        code === 24
      ).length,
      prefixes,
      `exit codes ${codes}`,
    );
    // The writer stopped: the next run completes it.
    assert.equal((await runOnce(work)).code, 0);
    assertMirrored(`${work}/src`, `${work}/rep`);
  }, { tmpfs: "256m" });
});

Deno.test("a file rewritten in place all the time is tried again after a growing pause, not every cycle", async () => {
  await withWork(async (work) => {
    const path = `${work}/src/busy.db`;
    Deno.writeFileSync(path, new Uint8Array(8 << 20).fill(1));
    let running = true;
    const writer = (async () => {
      using file = Deno.openSync(path, { write: true });
      for (let i = 0; running; i++) {
        file.seekSync((i * 4096) % (8 << 20), Deno.SeekMode.Start);
        file.writeSync(new Uint8Array([i & 255]));
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    })();
    const loop = startLoop(work, "0.1");
    try {
      await waitFor("a skipped copy", logHas(work, /busy\.db was not copied: it changed/));
      await new Promise((resolve) => setTimeout(resolve, 2500));
    } finally {
      running = false;
      await writer;
      assert.equal((await loop.stop()).code, 0);
    }
    const skipped = logLines(`${work}/log.txt`).filter((line) => line.includes("busy.db was not"));
    // ~25 cycles ran meanwhile; the pauses are 1 s, then 2 s.
    assert.ok(skipped.length >= 1 && skipped.length <= 2, skipped.join("\n"));
    skipped.forEach((line, i) =>
      assert.match(line, new RegExp(`; it keeps changing: it is tried again after ${2 ** i} s\\.$`))
    );
  }, { tmpfs: "64m" });
});

Deno.test("kill -9 in the middle of a big copy: old or new file, never a partial one; the next run converges", async () => {
  await withWork(async (work) => {
    // An earlier run: the state file exists when the killed run starts.
    writeFile(`${work}/src/small.txt`, "small");
    assert.equal((await runOnce(work)).code, 0);
    const size = 1024 * 1024 * 1024;
    const block = new Uint8Array(4 * 1024 * 1024);
    const file = Deno.openSync(`${work}/src/big.bin`, { write: true, create: true });
    for (let written = 0; written < size; written += block.length) {
      block.fill(written / block.length);
      file.writeSync(block);
    }
    file.close();
    writeFile(`${work}/rep/big.bin`, "the old version");
    const loop = startLoop(work, "10");
    // The copy under way (not the empty temp file that probes owners at start).
    await waitFor("a temp file being written", copyUnderWay(`${work}/rep`), 30_000);
    const killed = await loop.stop("SIGKILL");
    assert.notEqual(killed.code, 0);
    const now = Deno.statSync(`${work}/rep/big.bin`).size;
    assert.ok(now === 15 || now === size, `partial file of ${now} bytes`);
    if (now === 15) assert.equal(Deno.readTextFileSync(`${work}/rep/big.bin`), "the old version");
    const temp = [...Deno.readDirSync(`${work}/rep`)].find((e) => e.name.startsWith(".mirror."));
    // The killed run's temp file is known as its own: removed whatever the guards.
    const rerun = await runOnce(work, "--max-delete", "0");
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.ok(rerun.stdout.includes(`File ${temp?.name} has been removed.`), rerun.stdout);
    assert.deepEqual([...Deno.readDirSync(`${work}/rep`)].map((e) => e.name).sort(), [
      "big.bin",
      "small.txt",
    ]);
    assertMirrored(`${work}/src`, `${work}/rep`);
  }, { tmpfs: "6g" });
});

Deno.test({
  name: "memory stays bounded: a 3 GiB copy and a 512 MiB hash pair under 300 MiB peak RSS",
  ignore: !new Deno.Command("sh", { args: ["-c", "[ -x /usr/bin/time ]"] }).outputSync().success, // needs GNU time
  fn: async () => {
    await withWork(async (work) => {
      const gib = 1024 * 1024 * 1024;
      // Sparse files: cheap to make, but every byte is still copied and hashed.
      const make = (path: string, size: number, marker: string) => {
        const file = Deno.openSync(path, { write: true, create: true });
        file.truncateSync(size);
        file.writeSync(new TextEncoder().encode(marker));
        file.close();
      };
      make(`${work}/src/huge.bin`, 3 * gib, "huge");
      make(`${work}/src/same-size.bin`, gib / 2, "new!");
      Deno.mkdirSync(`${work}/rep`);
      make(`${work}/rep/same-size.bin`, gib / 2, "old!");
      const result = await runOnceUnder(["/usr/bin/time", "-f", "peak-rss-kib %M"], work);
      assert.equal(result.code, 0, result.stderr);
      const peakKib = Number(result.stderr.match(/peak-rss-kib (\d+)/)?.[1]);
      assert.ok(peakKib > 0 && peakKib < 300 * 1024, `peak RSS ${peakKib} KiB`);
      assert.ok(logHas(work, "File same-size.bin has been updated.")());
      assert.equal(Deno.statSync(`${work}/rep/huge.bin`).size, 3 * gib);
    }, { tmpfs: "5g" });
  },
});

Deno.test("a source given as a symlink is resolved every cycle (a release switch); the log names it as given", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/rel1/a.txt`, "release 1");
    writeFile(`${work}/rel2/b.txt`, "release 2");
    Deno.symlinkSync("rel1", `${work}/current`);
    const args = ["--source", "current", "--replica", "rep", "--log-file", "log.txt"];
    const child = mirrorCommand([...args, "--time-interval", "0.2"], work).spawn();
    const finished = child.output();
    try {
      const inReplica = (path: string) => {
        try {
          return Deno.lstatSync(`${work}/rep/${path}`).isFile;
        } catch {
          return false;
        }
      };
      await waitFor("release 1", () => inReplica("a.txt"));
      Deno.removeSync(`${work}/current`);
      Deno.symlinkSync("rel2", `${work}/current`); // the switch
      await waitFor("release 2", () => inReplica("b.txt") && !inReplica("a.txt"));
      Deno.removeSync(`${work}/rel1`, { recursive: true });
      writeFile(`${work}/rel2/c.txt`, "later");
      await waitFor("more of release 2", () => inReplica("c.txt"));
    } finally {
      child.kill("SIGINT");
    }
    const output = await finished;
    assert.equal(output.code, 0);
    assertMirrored(`${work}/rel2`, `${work}/rep`);
    const log = Deno.readTextFileSync(`${work}/log.txt`);
    assert.doesNotMatch(log, /rel1|rel2/, "the log names only what the user typed");
    assert.doesNotMatch(log, /WARNING|ERROR/);
    // The state knows the pair by the symlink, not by where it pointed: no set-aside state.
    const once = await runMirror([...args, "--once"], work);
    assert.doesNotMatch(once.stderr, /set aside/);
  });
});

Deno.test("a replica given as a dangling symlink is refused at start", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    Deno.symlinkSync("missing", `${work}/rep`);
    const result = await runOnce(work);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr.trim(),
      "folder-mirror: --replica: 'rep' is a symlink to 'missing', which does not exist.",
    );
    assert.throws(() => Deno.statSync(`${work}/missing`), Deno.errors.NotFound);
  });
});

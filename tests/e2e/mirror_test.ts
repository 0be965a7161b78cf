import assert from "node:assert/strict";
import {
  afterCtimeSecond,
  assertMirrored,
  editKeepingMtime,
  IS_ROOT,
  listTree,
  logLines,
  runMirror,
  runOnce,
  runOnceUnder,
  withoutRootOverrides,
  withWork,
  writeFile,
} from "../helpers.ts";

/** Run a command; true when it exits 0. */
function succeedsQuietly(program: string, ...args: string[]): boolean {
  try {
    return new Deno.Command(program, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/** Set a symlink's own owner. */
async function lchown(path: string, uid: number, gid: number): Promise<void> {
  (await import("node:fs")).lchownSync(path, uid, gid);
}

const LINE = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[(INFO|WARNING|ERROR)\]: \S.*$/;

/** Messages (the text after `]: `) of a log, start line excluded. */
function messages(lines: string[]): string[] {
  return lines.map((line) => line.slice(line.indexOf("]: ") + 3))
    .filter((message) => !message.startsWith("Mirror started"));
}

/** A run's summary when it found nothing to do (it logs one all the same). */
const UP_TO_DATE =
  /^Cycle finished: 0 copied, 0 updated, 0 linked, 0 removed, 0 moved, 0 folders created, 0 symlinks made, 0 attribute updates, 0 warnings, 0 failed; 0 bytes in [\d.]+ s; source tree digest [0-9a-f]{32}\.$/;

/**
 * Run `--once` again on `work`, check it succeeded and mirrored, and return
 * the actions it logged (its messages without the start and summary lines), sorted.
 */
async function actionsOfAnotherRun(work: string): Promise<string[]> {
  const mark = logLines(`${work}/log.txt`).length;
  const result = await runOnce(work);
  assert.equal(result.code, 0, result.stderr);
  assertMirrored(`${work}/src`, `${work}/rep`);
  return messages(logLines(`${work}/log.txt`).slice(mark)).slice(0, -1).sort();
}

Deno.test("mirror: first cycle copies files, folders, modes, mtimes and symlinks", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`;
    Deno.mkdirSync(`${src}/docs/deep`, { recursive: true });
    Deno.mkdirSync(`${src}/empty`);
    Deno.mkdirSync(`${src}/locked`);
    writeFile(`${src}/a.txt`, "hello", 0o640, 1_500_000_000_123);
    writeFile(`${src}/run.sh`, "#!/bin/sh\n", 0o755);
    writeFile(`${src}/docs/deep/b.bin`, "x".repeat(3 * 1024 * 1024 + 7));
    writeFile(`${src}/locked/inside.txt`, "in a read-only folder");
    Deno.chmodSync(`${src}/locked`, 0o555);
    Deno.chmodSync(`${src}/docs`, 0o750);
    Deno.symlinkSync("../a.txt", `${src}/docs/link`);
    Deno.symlinkSync("does/not/exist", `${src}/dangling`);

    const result = await runOnce(work);
    assert.equal(result.code, 0, result.stderr);
    assertMirrored(src, `${work}/rep`);
    const log = messages(logLines(`${work}/log.txt`));
    for (
      const expected of [
        "File a.txt has been copied.",
        "File docs/deep/b.bin has been copied.",
        "Folder docs has been created.",
        "Folder empty has been created.",
        "Symlink docs/link has been created.",
        "Symlink dangling has been created.",
      ]
    ) assert.ok(log.includes(expected), `missing "${expected}" in ${log.join("\n")}`);
    assert.match(
      log.at(-1)!,
      /^Cycle finished: 4 copied, 0 updated, 0 linked, 0 removed, 0 moved, 4 folders created, 2 symlinks made, 0 attribute updates, 0 warnings, 0 failed; \d+ bytes in [\d.]+ s; source tree digest [0-9a-f]{32}\.$/,
    );
    assert.equal(Deno.readLinkSync(`${work}/rep/dangling`), "does/not/exist");
    // A new folder is one line, however its attributes are set afterwards.
    assert.deepEqual(log.filter((line) => /^(Attributes|Permissions) of folder/.test(line)), []);
    // Folders keep their mtimes (set after their contents), the replica root too.
    for (const dir of ["docs", "docs/deep", "locked", "empty", ""]) {
      const a = Deno.statSync(`${src}/${dir}`), b = Deno.statSync(`${work}/rep/${dir}`);
      assert.equal(b.mtime?.getTime(), a.mtime?.getTime(), `mtime of folder '${dir}'`);
      assert.equal(b.mode, a.mode, `mode of folder '${dir}'`);
    }
  });
});

Deno.test("mirror: log lines have the original format, same text in the file and on the console", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    const before = Date.now();
    const result = await runOnce(work);
    const lines = logLines(`${work}/log.txt`);
    assert.ok(lines.length >= 3);
    for (const line of lines) assert.match(line, LINE);
    assert.deepEqual(result.stdout.split("\n").filter((l) => l !== ""), lines);
    assert.equal(result.stderr, "");
    // Local time, comma before the milliseconds.
    const [, y, mo, d, h, mi, s, ms] = lines[0]!.match(
      /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d),(\d{3})/,
    )!.map(Number);
    const stamped = new Date(y!, mo! - 1, d!, h!, mi!, s!, ms!).getTime();
    assert.ok(stamped >= before - 1000 && stamped <= Date.now(), `${lines[0]} vs ${before}`);
    assert.ok(lines.some((l) => l.endsWith("[INFO]: File a.txt has been copied.")));
  });
});

Deno.test("mirror: an unchanged second cycle logs no action", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    Deno.mkdirSync(`${work}/src/d`);
    await runOnce(work);
    const first = logLines(`${work}/log.txt`).length;
    const result = await runOnce(work);
    assert.equal(result.code, 0);
    const added = messages(logLines(`${work}/log.txt`).slice(first));
    assert.equal(added.length, 1, added.join("\n")); // no action: its summary only
    assert.match(added[0]!, UP_TO_DATE);
  });
});

Deno.test("mirror: updates changed files, including same-size edits with the mtime restored", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`, rep = `${work}/rep`;
    writeFile(`${src}/grow.txt`, "short");
    writeFile(`${src}/same.txt`, "aaaa");
    writeFile(`${src}/tampered.txt`, "bbbb");
    await runOnce(work);
    writeFile(`${src}/grow.txt`, "much longer now");
    editKeepingMtime(`${src}/same.txt`, "AAAA");
    await afterCtimeSecond(`${rep}/tampered.txt`); // not the documented same-second gap
    editKeepingMtime(`${rep}/tampered.txt`, "XXXX");
    assert.deepEqual(await actionsOfAnotherRun(work), [
      "File grow.txt has been updated.",
      "File same.txt has been updated.",
      "File tampered.txt has been updated.",
    ]);
  });
});

Deno.test("mirror: mode or mtime differences alone update the attributes", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`, rep = `${work}/rep`;
    writeFile(`${src}/m.txt`, "m");
    writeFile(`${src}/t.txt`, "t");
    Deno.mkdirSync(`${src}/d`);
    await runOnce(work);
    Deno.chmodSync(`${src}/m.txt`, 0o600);
    Deno.utimeSync(`${rep}/t.txt`, new Date(1_000_000), new Date(1_000_000));
    Deno.chmodSync(`${src}/d`, 0o711);
    assert.deepEqual(await actionsOfAnotherRun(work), [
      "Attributes of file m.txt have been updated.",
      "Attributes of file t.txt have been updated.",
      "Attributes of folder d have been updated.",
    ]);
    // Counted apart from files with new content (#18).
    assert.match(
      logLines(`${work}/log.txt`).at(-1)!,
      / 0 copied, 0 updated, 0 linked, 0 removed, 0 moved, 0 folders created, 0 symlinks made, 3 attribute updates, /,
    );
  });
});

Deno.test("mirror: the start line of --once says one cycle, not an interval (#18)", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    await runOnce(work);
    const start = logLines(`${work}/log.txt`)[0]!;
    assert.match(
      start,
      /\[INFO\]: Mirror started \(version [^)]+\): source src, replica rep, log file log\.txt, one cycle\.$/,
    );
  });
});

Deno.test("mirror: entries only in the replica are removed, recursively", async () => {
  await withWork(async (work) => {
    const rep = `${work}/rep`;
    writeFile(`${work}/src/keep.txt`, "k");
    Deno.mkdirSync(`${rep}/old/deeper`, { recursive: true });
    writeFile(`${rep}/old/deeper/x.txt`, "x");
    writeFile(`${rep}/stray.txt`, "s");
    Deno.symlinkSync("keep.txt", `${rep}/stray-link`);
    Deno.mkdirSync(`${rep}/empty-extra`);
    const result = await runOnce(work);
    assert.equal(result.code, 0);
    assertMirrored(`${work}/src`, rep);
    const log = messages(logLines(`${work}/log.txt`));
    for (
      const expected of [
        "Folder old has been removed.",
        "File stray.txt has been removed.",
        "Symlink stray-link has been removed.",
        "Folder empty-extra has been removed.",
      ]
    ) assert.ok(log.includes(expected), expected);
    assert.ok(!log.some((line) => line.includes("old/deeper")), "children of a removed folder");
  });
});

Deno.test("mirror: every type change replaces the replica entry", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`, rep = `${work}/rep`;
    const make = {
      file: (p: string) => writeFile(p, "file"),
      dir: (p: string) => {
        Deno.mkdirSync(p);
        writeFile(`${p}/child`, "c");
      },
      symlink: (p: string) => Deno.symlinkSync("target", p),
    };
    const kinds = Object.keys(make) as (keyof typeof make)[];
    Deno.mkdirSync(rep);
    for (const from of kinds) {
      for (const to of kinds) {
        if (from === to) continue;
        make[from](`${rep}/${from}-to-${to}`);
        make[to](`${src}/${from}-to-${to}`);
      }
    }
    const result = await runOnce(work);
    assert.equal(result.code, 0, result.stderr);
    assertMirrored(src, rep);
  });
});

Deno.test("mirror: awkward names, 255-byte names and 60 nested levels", async () => {
  await withWork(async (work) => {
    const src = `${work}/src`;
    const names = [
      "with space",
      "-leading-dash",
      "--looks-like-a-flag",
      "new\nline",
      "tab\there",
      "caf\u00e9", // NFC
      "cafe\u0301", // NFD: a different name on Linux
      "日本語",
      "x".repeat(255),
      "é".repeat(127) + "x", // 255 bytes in UTF-8
      ".hidden",
    ];
    for (const name of names) writeFile(`${src}/${name}`, `content of ${name}`);
    Deno.mkdirSync(`${src}/${"y".repeat(255)}`);
    let deep = src;
    for (let level = 0; level < 60; level++) deep += `/level${level}`;
    Deno.mkdirSync(deep, { recursive: true });
    writeFile(`${deep}/bottom.txt`, "deep");

    const result = await runOnce(work);
    assert.equal(result.code, 0, result.stderr);
    assertMirrored(src, `${work}/rep`);
    assert.equal(listTree(`${work}/rep`).size, listTree(src).size);
    // A newline in a name stays on one log line (escaped).
    for (const line of logLines(`${work}/log.txt`)) assert.match(line, LINE);
    assert.ok(
      logLines(`${work}/log.txt`).some((l) => l.includes("File new\\nline has been copied.")),
    );
  });
});

Deno.test("mirror: leaves no temp file and removes stale ones", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    Deno.mkdirSync(`${work}/rep/sub`, { recursive: true });
    writeFile(`${work}/rep/sub/.mirror.tmp.0123456789abcdef`, "half a file");
    const result = await runOnce(work);
    assert.equal(result.code, 0);
    assertMirrored(`${work}/src`, `${work}/rep`);
  });
});

Deno.test("mirror: the replica folder is created with its parents", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    const args = ["--source", "src", "--replica", "deep/er/rep", "--log-file", "log.txt", "--once"];
    const result = await runMirror(args, work);
    assert.equal(result.code, 0, result.stderr);
    assertMirrored(`${work}/src`, `${work}/deep/er/rep`);
  });
});

Deno.test({
  name: "mirror: an unreadable file is one ERROR, the rest is mirrored, --once exits 1",
  ignore: withoutRootOverrides() === undefined, // needs setpriv (util-linux) to drop root's override
  fn: async () => {
    await withWork(async (work) => {
      writeFile(`${work}/src/ok.txt`, "fine");
      writeFile(`${work}/src/secret.txt`, "no access", 0o000);
      const result = await runOnceUnder(withoutRootOverrides(), work);
      assert.equal(result.code, 1);
      assert.equal(Deno.readTextFileSync(`${work}/rep/ok.txt`), "fine");
      assert.ok(!listTree(`${work}/rep`).has("secret.txt"));
      const errors = logLines(`${work}/log.txt`).filter((line) => line.includes("[ERROR]"));
      assert.equal(errors.length, 1, errors.join("\n"));
      assert.match(
        errors[0]!,
        /\[ERROR\]: Could not copy file secret\.txt: .*[Pp]ermission denied/,
      );
      // On the console, errors go to stderr with the same text.
      assert.equal(result.stderr.trim(), errors[0]);
      assert.match(logLines(`${work}/log.txt`).at(-1)!, /1 failed/);
    });
  },
});

Deno.test({
  name: "mirror: as root, owners and groups are kept (files, folders, symlinks)",
  ignore: !IS_ROOT, // chown to other users needs root
  fn: async () => {
    await withWork(async (work) => {
      const src = `${work}/src`;
      writeFile(`${src}/d/f.txt`, "f");
      Deno.symlinkSync("f.txt", `${src}/d/link`);
      Deno.chownSync(`${src}/d/f.txt`, 1234, 5678);
      Deno.chownSync(`${src}/d`, 4321, 8765);
      await lchown(`${src}/d/link`, 1111, 2222);
      assert.equal((await runOnce(work)).code, 0);
      const owner = (path: string) => {
        const info = Deno.lstatSync(`${work}/rep/${path}`);
        return [info.uid, info.gid];
      };
      assert.deepEqual(owner("d/f.txt"), [1234, 5678]);
      assert.deepEqual(owner("d"), [4321, 8765]);
      assert.deepEqual(owner("d/link"), [1111, 2222]);
      // A changed owner alone is an attribute update.
      Deno.chownSync(`${src}/d/f.txt`, 1234, 9999);
      assert.deepEqual(await actionsOfAnotherRun(work), [
        "Attributes of file d/f.txt have been updated.",
      ]);
      assert.deepEqual(owner("d/f.txt"), [1234, 9999]);
    });
  },
});

Deno.test({
  name: "mirror: without the right to give owners, groups are kept where allowed and no file fails",
  ignore: !IS_ROOT || withoutRootOverrides() === undefined, // needs setpriv to drop CAP_CHOWN
  fn: async () => {
    await withWork(async (work) => {
      const src = `${work}/src`;
      writeFile(`${src}/mine.txt`, "a group this process is in");
      writeFile(`${src}/theirs.txt`, "a group it is not in");
      Deno.chownSync(`${src}/mine.txt`, 1234, 4242);
      Deno.chownSync(`${src}/theirs.txt`, 1234, 5678);
      // root, but in group 4242 too and without the right to give owners
      const run = () =>
        runOnceUnder(["setpriv", "--groups", "4242", "--bounding-set", "-chown"], work);
      const first = await run();
      assert.equal(first.code, 0, first.stderr);
      assert.equal(first.stderr, "", "no ERROR or WARNING for owners");
      const info = (path: string) => Deno.lstatSync(`${work}/rep/${path}`);
      assert.equal(info("mine.txt").gid, 4242, "a group it is in is kept");
      assert.equal(info("theirs.txt").gid, 0, "the group could not be given");
      assert.equal(info("theirs.txt").uid, 0, "nor the user");
      // Nothing to report next time: refused groups are remembered, not retried.
      const mark = logLines(`${work}/log.txt`).length;
      const second = await run();
      assert.equal(second.code, 0);
      const added = messages(logLines(`${work}/log.txt`).slice(mark));
      assert.equal(added.length, 1, added.join("\n")); // no action: its summary only
      assert.match(added[0]!, UP_TO_DATE);
    });
  },
});

Deno.test("mirror: a sparse file keeps its holes (256 MiB with 1 MiB of data)", async () => {
  await withWork(async (work) => {
    using file = Deno.openSync(`${work}/src/sparse.img`, { write: true, create: true });
    file.truncateSync(256 << 20);
    file.seekSync(100 << 20, Deno.SeekMode.Start);
    file.writeSync(new Uint8Array(1 << 20).fill(7));
    file.close();
    assert.equal((await runOnce(work)).code, 0);
    assertMirrored(`${work}/src`, `${work}/rep`);
    const used = Deno.statSync(`${work}/rep/sparse.img`).blocks! * 512;
    assert.ok(used < 16 << 20, `the replica's copy uses ${used} bytes`);
    // Its MD5 was learnt as its bytes passed through the program: the digest
    // needs no second read, though 256 MiB is beyond its budget (#18).
    assert.match(logLines(`${work}/log.txt`).at(-1)!, /source tree digest [0-9a-f]{32}\.$/);
  });
});

Deno.test({
  name: "mirror: a folder that cannot be removed names the entry inside that blocks it",
  ignore: withoutRootOverrides() === undefined, // needs setpriv (util-linux) to drop root's override
  fn: async () => {
    await withWork(async (work) => {
      writeFile(`${work}/src/keep.txt`, "k");
      writeFile(`${work}/rep/old/deeper/locked/x.txt`, "x");
      for (const name of ["a", "b", "c", "z"]) writeFile(`${work}/rep/old/deeper/${name}`, name);
      Deno.chmodSync(`${work}/rep/old/deeper/locked`, 0o000);
      const result = await runOnceUnder(withoutRootOverrides(), work);
      assert.equal(result.code, 1);
      assert.match(
        result.stderr.trim(),
        /\[ERROR\]: Could not remove folder old: Permission denied \(os error 13\): old\/deeper\/locked cannot be removed\.$/,
      );
    });
  },
});

Deno.test({
  name: "mirror: as root, set-user-id and set-group-id bits survive the change of owner",
  ignore: !IS_ROOT,
  fn: async () => {
    await withWork(async (work) => {
      writeFile(`${work}/src/tool`, "#!/bin/sh\n", 0o755);
      Deno.chownSync(`${work}/src/tool`, 1234, 5678);
      Deno.chmodSync(`${work}/src/tool`, 0o6755);
      writeFile(`${work}/src/big.bin`, "x".repeat(2 << 20)); // a background copy too
      Deno.chownSync(`${work}/src/big.bin`, 1234, 5678);
      Deno.chmodSync(`${work}/src/big.bin`, 0o2644);
      assert.equal((await runOnce(work)).code, 0);
      assertMirrored(`${work}/src`, `${work}/rep`);
      assert.equal(Deno.statSync(`${work}/rep/tool`).mode! & 0o7777, 0o6755);
      assert.equal(Deno.statSync(`${work}/rep/big.bin`).mode! & 0o7777, 0o2644);
    });
  },
});

Deno.test({
  name: "mirror: in a user namespace, owners it cannot map (EINVAL) fail no file",
  ignore: !IS_ROOT || !succeedsQuietly("unshare", "--user", "--map-root-user", "true"),
  fn: async () => {
    await withWork(async (work) => {
      writeFile(`${work}/src/a.txt`, "a");
      Deno.chownSync(`${work}/src/a.txt`, 1234, 1234); // 65534 (unmapped) inside
      const result = await runOnceUnder(["unshare", "--user", "--map-root-user"], work);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stderr, "");
      assert.equal(Deno.readTextFileSync(`${work}/rep/a.txt`), "a");
    });
  },
});

Deno.test("mirror: the replica folder keeps the source folder's mtime, run after run", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    for (let run = 0; run < 3; run++) {
      assert.equal((await runOnce(work)).code, 0);
      const want = Deno.statSync(`${work}/src`).mtime?.getTime();
      assert.equal(Deno.statSync(`${work}/rep`).mtime?.getTime(), want, `after run ${run + 1}`);
    }
  });
});

Deno.test("mirror: a new file in a folder is one line (its folder's new mtime is no update)", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/d/a.txt`, "a");
    assert.equal((await runOnce(work)).code, 0);
    writeFile(`${work}/src/d/new.txt`, "new");
    assert.deepEqual(await actionsOfAnotherRun(work), ["File d/new.txt has been copied."]);
    const summary = logLines(`${work}/log.txt`).at(-1)!;
    assert.match(summary, / 1 copied, 0 updated, /);
  });
});

Deno.test({
  name: "mirror: not root, a read-only replica folder is opened for the writes in it, then closed",
  ignore: withoutRootOverrides() === undefined, // needs setpriv (util-linux) to drop root's override
  fn: async () => {
    await withWork(async (work) => {
      writeFile(`${work}/src/ro/a.txt`, "a");
      Deno.chmodSync(`${work}/src/ro`, 0o555);
      writeFile(`${work}/rep/kept/x.tmp`, "excluded");
      writeFile(`${work}/rep/kept/y.txt`, "removed");
      Deno.chmodSync(`${work}/rep/kept`, 0o555);
      const run = () => runOnceUnder(withoutRootOverrides(), work, "--exclude", "*.tmp");
      assert.equal((await run()).code, 0);
      Deno.chmodSync(`${work}/src/ro`, 0o755);
      writeFile(`${work}/src/ro/b.txt`, "b"); // written into a replica folder of mode 0555
      Deno.chmodSync(`${work}/src/ro`, 0o555);
      const second = await run();
      assert.equal(second.code, 0, second.stderr);
      assert.equal(Deno.readTextFileSync(`${work}/rep/ro/b.txt`), "b");
      assert.equal(Deno.statSync(`${work}/rep/ro`).mode! & 0o777, 0o555);
      assert.deepEqual([...Deno.readDirSync(`${work}/rep/kept`)].map((e) => e.name), ["x.tmp"]);
      assert.equal(Deno.statSync(`${work}/rep/kept`).mode! & 0o777, 0o555);
    });
  },
});

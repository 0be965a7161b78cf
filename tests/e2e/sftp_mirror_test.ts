/**
 * The mirror with its replica on an SSH host: a throwaway OpenSSH server on
 * 127.0.0.1 (`tests/sshd.ts`, logged into as a plain user made for it), the
 * program run as the README says (read, write, and network access to the
 * host's port only; the key and `known_hosts` given by flag). The replica is
 * read back by rsync over ssh, a tool not under test, and compared with the
 * source at the precision SFTP keeps (whole seconds).
 */
import assert from "node:assert/strict";
import {
  copyUnderWay,
  type Item,
  listTree,
  logLines,
  mountTmpfs,
  type RunResult,
  sftpProgramArgs,
  succeeds,
  waitFor,
  withWork,
  writeFile,
} from "../helpers.ts";
import { makeKey, type Sshd, sshdMissing, type SshdOptions, startSshd } from "../sshd.ts";

const missing = sshdMissing() ??
  (succeeds("rsync", "--version") ? undefined : "needs rsync: apt-get install rsync");
if (missing !== undefined) console.warn(`sftp mirror tests skipped: ${missing}`);
const USER = "mirrortest";
const decoder = new TextDecoder();

/** The program's arguments for a replica at `path` below the server's root. */
function sftpArgs(sshd: Sshd, path: string, ...args: string[]): string[] {
  return sftpProgramArgs(
    sshd,
    path,
    "--source",
    "src",
    ...(args.includes("--log-file") ? [] : ["--log-file", "log.txt"]),
    ...args,
  );
}

function command(work: string, args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args,
    cwd: work,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

async function run(work: string, args: string[]): Promise<RunResult> {
  const output = await command(work, args).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** One cycle to `rep` on the host. */
function once(work: string, sshd: Sshd, ...args: string[]): Promise<RunResult> {
  return run(work, sftpArgs(sshd, "rep", "--once", ...args));
}

/** The tree with mtimes in whole seconds (what SFTP keeps). */
function inSeconds(root: string): Map<string, Item> {
  const items = listTree(root);
  for (const item of items.values()) {
    if (item.mtimeMs !== undefined) item.mtimeMs = Math.floor(item.mtimeMs / 1000) * 1000;
  }
  return items;
}

/** How `replica` differs from `source`, at SFTP's precision; one line per path. */
function diffInSeconds(source: string, replica: string): string[] {
  const want = inSeconds(source), have = inSeconds(replica);
  const diff: string[] = [];
  for (const [path, item] of want) {
    if (item.kind === "other") continue;
    const got = have.get(path);
    if (JSON.stringify(got) !== JSON.stringify(item)) {
      diff.push(`${path}: want ${JSON.stringify(item)}, have ${JSON.stringify(got)}`);
    }
  }
  for (const path of have.keys()) if (!want.has(path)) diff.push(`${path}: not in the source`);
  return diff;
}

/** The replica as rsync over ssh copies it back (`rsync -a`), compared with the source. */
async function readBackDiff(work: string, sshd: Sshd, path = "rep"): Promise<string[]> {
  const back = await Deno.makeTempDir({ dir: work, prefix: "back-" });
  const ssh = ["ssh", ...sshd.sshArgs().slice(0, -1)].join(" ");
  const output = await new Deno.Command("rsync", {
    args: ["-a", "-e", ssh, `127.0.0.1:${sshd.root}/${path}/`, `${back}/`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, decoder.decode(output.stderr));
  const diff = diffInSeconds(`${work}/src`, back);
  await Deno.remove(back, { recursive: true });
  return diff;
}

/** Files with whole-second mtimes, odd names, a symlink, an empty folder, four folders deep. */
function fillSource(src: string): void {
  const at = Math.floor(Date.now() / 1000) * 1000 - 60_000;
  writeFile(`${src}/top.txt`, "top", 0o644, at);
  writeFile(`${src}/a/b/c/d/deep.txt`, "four folders deep", 0o600, at);
  writeFile(`${src}/a/b/we'ird \\ name\nwith a newline.txt`, "odd", 0o644, at);
  writeFile(`${src}/a/ünïcödé €.txt`, "unicode", 0o755, at);
  Deno.mkdirSync(`${src}/empty/inner`, { recursive: true });
  writeFile(`${src}/moving/x.txt`, "x", 0o644, at);
  writeFile(`${src}/moving/y/z.txt`, "z", 0o644, at);
  Deno.symlinkSync("../top.txt", `${src}/a/link`);
  Deno.symlinkSync("nowhere", `${src}/dangling`);
  const big = new Uint8Array(3 << 20);
  for (let i = 0; i < big.length; i += 65536) crypto.getRandomValues(big.subarray(i, i + 65536));
  Deno.writeFileSync(`${src}/a/big.bin`, big);
  Deno.utimeSync(`${src}/a/big.bin`, new Date(at), new Date(at));
}

/** A test with a fresh sshd and a work folder holding `src`. */
function sftpTest(
  name: string,
  body: (work: string, sshd: Sshd) => Promise<void>,
  options: SshdOptions = {},
) {
  Deno.test({
    name: `sftp: ${name}`,
    ignore: missing !== undefined,
    fn: () =>
      withWork(async (work) => {
        const sshd = await startSshd({ user: USER, ...options });
        try {
          await body(work, sshd);
        } finally {
          await sshd.stop();
        }
      }),
  });
}

function messages(work: string): string[] {
  return logLines(`${work}/log.txt`).map((line) => line.slice(line.indexOf("]: ") + 3));
}

sftpTest(
  "mirrors a tree four folders deep, rsync reads it back, then follows changes",
  async (work, sshd) => {
    fillSource(`${work}/src`);
    // Settled sources (their ctime second over): their copies are recorded, so moves are seen.
    await new Promise((resolve) => setTimeout(resolve, 2200));
    const first = await once(work, sshd);
    assert.equal(first.code, 0, first.stderr + first.stdout);
    assert.match(first.stdout, /hashed on mirrortest@\[127\.0\.0\.1\]:\d+ \(find, md5sum\)/);
    assert.deepEqual(await readBackDiff(work, sshd), []);
    assert.deepEqual(diffInSeconds(`${work}/src`, `${sshd.root}/rep`), []);
    // Owned by the login user, as any file it writes.
    assert.equal(
      Deno.statSync(`${sshd.root}/rep/top.txt`).uid,
      Number(
        decoder.decode(new Deno.Command("id", { args: ["-u", USER] }).outputSync().stdout),
      ),
    );

    const unchanged = await once(work, sshd);
    assert.equal(unchanged.code, 0, unchanged.stderr);
    assert.match(unchanged.stdout, /Cycle finished: 0 copied, 0 updated, .* 0 removed/);

    // Changes deep down: an update, a new file, a rename across folders, deletions.
    const src = `${work}/src`;
    writeFile(`${src}/a/b/c/d/deep.txt`, "four folders deep, changed", 0o600, 1_700_000_000_000);
    writeFile(`${src}/empty/inner/new.txt`, "new", 0o644, 1_700_000_000_000);
    Deno.renameSync(`${src}/a/big.bin`, `${src}/empty/big.bin`);
    Deno.renameSync(`${src}/moving`, `${src}/a/moved`);
    Deno.removeSync(`${src}/a/b`, { recursive: true });
    Deno.removeSync(`${src}/dangling`);
    const changed = await once(work, sshd);
    assert.equal(changed.code, 0, changed.stderr);
    assert.deepEqual(await readBackDiff(work, sshd), []);
    // (On failure: the whole log, and the state file's size, say what the runs knew.)
    const context = `${messages(work).join("\n")}\nstate: ${
      Deno.statSync(`${work}/log.txt.state`).size
    } B`;
    assert.match(changed.stdout, /File a\/big\.bin has been moved to empty\/big\.bin/, context);
    assert.match(changed.stdout, /Folder moving has been moved to a\/moved/, context);
    // No temp file is left anywhere.
    assert.deepEqual(
      [...listTree(`${sshd.root}/rep`).keys()].filter((path) => path.includes(".mirror.tmp.")),
      [],
    );
  },
);

sftpTest(
  "hard links: one file with the same names on the host, four folders deep",
  async (work, sshd) => {
    const src = `${work}/src`, rep = `${sshd.root}/rep`;
    const at = 1_700_000_000_000;
    writeFile(`${src}/a.txt`, "one file, three names", 0o644, at);
    Deno.mkdirSync(`${src}/d1/d2/d3/d4`, { recursive: true });
    Deno.linkSync(`${src}/a.txt`, `${src}/d1/b.txt`);
    Deno.linkSync(`${src}/a.txt`, `${src}/d1/d2/d3/d4/c.txt`);
    writeFile(`${src}/d1/alone.txt`, "one name", 0o644, at);
    // Settled sources: their pairs are recorded (a name's source inode finds its other names).
    await new Promise((resolve) => setTimeout(resolve, 2200));
    const first = await once(work, sshd);
    assert.equal(first.code, 0, first.stderr + first.stdout);
    assert.match(first.stdout, /File d1\/b\.txt has been linked to a\.txt/);
    assert.deepEqual(diffInSeconds(src, rep), []); // links included: the same names per file
    assert.equal(Deno.statSync(`${rep}/d1/d2/d3/d4/c.txt`).nlink, 3);
    assert.deepEqual(
      [...listTree(rep).keys()].filter((path) => path.includes(".mirror.tmp.")),
      [],
      "no temp name left",
    );

    // Nothing to do: nothing linked again, no file read back.
    const unchanged = await once(work, sshd);
    assert.equal(unchanged.code, 0, unchanged.stderr);
    assert.match(unchanged.stdout, /Cycle finished: 0 copied, 0 updated, 0 linked,/);
    const verified = await run(work, sftpArgs(sshd, "rep", "--verify"));
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);

    // A name leaves the group (its own content now), a new name joins in a new folder.
    Deno.removeSync(`${src}/d1/b.txt`);
    writeFile(`${src}/d1/b.txt`, "a file of its own", 0o644, at);
    Deno.mkdirSync(`${src}/new`);
    Deno.linkSync(`${src}/a.txt`, `${src}/new/e.txt`);
    const changed = await once(work, sshd);
    assert.equal(changed.code, 0, changed.stderr);
    assert.deepEqual(diffInSeconds(src, rep), []);
    assert.equal(Deno.readTextFileSync(`${rep}/a.txt`), "one file, three names");
    assert.equal(Deno.statSync(`${rep}/new/e.txt`).ino, Deno.statSync(`${rep}/a.txt`).ino);
    assert.equal(Deno.statSync(`${rep}/d1/b.txt`).nlink, 1);

    // A link made behind the program's back in the replica: --verify tells.
    Deno.removeSync(`${rep}/d1/alone.txt`);
    Deno.linkSync(`${rep}/d1/b.txt`, `${rep}/d1/alone.txt`);
    const tampered = await run(work, sftpArgs(sshd, "rep", "--verify"));
    assert.equal(tampered.code, 1, tampered.stdout);
    assert.match(tampered.stdout, /hard links differ/);

    // Without a shell the host cannot say which names are one file: each name is a file.
    const plain = await run(work, sftpArgs(sshd, "plain", "--once", "--ssh-no-exec"));
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(Deno.statSync(`${sshd.root}/plain/a.txt`).nlink, 1);
    assert.equal(Deno.readTextFileSync(`${sshd.root}/plain/new/e.txt`), "one file, three names");
  },
);

sftpTest(
  "--backup-dir on the host: what a cycle deletes or overwrites is kept there",
  async (work, sshd) => {
    const src = `${work}/src`, rep = `${sshd.root}/rep`, bak = `${sshd.root}/bak`;
    const backupDir = `sftp://${USER}@127.0.0.1:${sshd.port}${sshd.root}/bak`;
    writeFile(`${src}/a/b/c/d/deep.txt`, "deep v1", 0o644, 1_700_000_000_000);
    writeFile(`${src}/old/x.txt`, "in a folder removed whole", 0o644, 1_700_000_000_000);
    writeFile(`${src}/big.bin`, "x".repeat(1536 * 1024), 0o644, 1_700_000_000_000);
    const refused = await once(work, sshd, "--backup-dir", "bak");
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--backup-dir: 'bak' is not a folder on mirrortest@/);
    const first = await once(work, sshd, "--backup-dir", backupDir);
    assert.equal(first.code, 0, first.stderr + first.stdout);
    const deepIno = Deno.statSync(`${rep}/a/b/c/d/deep.txt`).ino;

    writeFile(`${src}/a/b/c/d/deep.txt`, "deep v2, four folders down", 0o644, 1_700_000_000_000);
    Deno.removeSync(`${src}/old`, { recursive: true });
    const second = await once(work, sshd, "--backup-dir", backupDir);
    assert.equal(second.code, 0, second.stderr + second.stdout);
    assert.deepEqual(await readBackDiff(work, sshd), []);
    const [folder, ...more] = [...Deno.readDirSync(bak)].map((entry) => entry.name);
    assert.deepEqual(more, []);
    assert.match(folder!, /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$/);
    assert.equal(Deno.readTextFileSync(`${bak}/${folder}/a/b/c/d/deep.txt`), "deep v1");
    // The old file itself: a second name made on the host, then the new one renamed over it.
    assert.equal(Deno.statSync(`${bak}/${folder}/a/b/c/d/deep.txt`).ino, deepIno);
    assert.equal(Deno.readTextFileSync(`${bak}/${folder}/old/x.txt`), "in a folder removed whole");
    assert.match(second.stdout, /Folder old has been backed up to sftp:.*\/bak\/.*\/old\./);
    assert.match(second.stdout, / 0 failed, 2 backed up; /);

    // --backup-keep on the host: the older cycle folder goes (listed and removed over SFTP).
    await new Promise((resolve) => setTimeout(resolve, 1000 - Date.now() % 1000 + 20));
    writeFile(`${src}/a/b/c/d/deep.txt`, "deep v3, later", 0o644, 1_700_000_000_000);
    const kept = await once(work, sshd, "--backup-dir", backupDir, "--backup-keep", "1");
    assert.equal(kept.code, 0, kept.stderr + kept.stdout);
    const [newest, ...older] = [...Deno.readDirSync(bak)].map((entry) => entry.name);
    assert.deepEqual(older, []);
    assert.notEqual(newest, folder);
    assert.equal(
      Deno.readTextFileSync(`${bak}/${newest}/a/b/c/d/deep.txt`),
      "deep v2, four folders down",
    );
    assert.match(kept.stdout, /Backup folder sftp:.* has been removed \(--backup-keep 1\)\./);

    // A backup folder on a full disk of the host (another file system: a copy, which fails):
    // the deletion is blocked, the file stays.
    Deno.removeSync(bak, { recursive: true });
    const unmount = mountTmpfs(bak, "1m");
    try {
      Deno.chownSync(bak, Deno.statSync(sshd.root).uid, null);
      Deno.removeSync(`${src}/big.bin`);
      const full = await once(work, sshd, "--backup-dir", backupDir);
      assert.equal(full.code, 1, full.stdout);
      assert.equal(Deno.statSync(`${rep}/big.bin`).size, 1536 * 1024);
      assert.match(
        full.stderr + full.stdout,
        /File big\.bin was left as it is: it could not be backed up/,
      );
      for (const name of Deno.readDirSync(bak)) {
        assert.ok(
          !Deno.readDirSync(`${bak}/${name.name}`).some((entry) => entry.name === "big.bin"),
        );
      }
    } finally {
      unmount();
    }
  },
);

sftpTest(
  "a replica file changed behind the program's back is caught (same size, same mtime)",
  async (work, sshd) => {
    writeFile(`${work}/src/f.txt`, "original", 0o644, 1_700_000_000_000);
    writeFile(`${work}/src/g.txt`, "other", 0o644, 1_700_000_000_000);
    assert.equal((await once(work, sshd)).code, 0);
    assert.equal((await once(work, sshd)).code, 0); // the write's key adopted
    const replicaFile = `${sshd.root}/rep/f.txt`;
    await new Promise((resolve) => setTimeout(resolve, 1100)); // another ctime second
    Deno.writeTextFileSync(replicaFile, "tampered");
    Deno.utimeSync(replicaFile, new Date(1_700_000_000_000), new Date(1_700_000_000_000));
    const caught = await once(work, sshd);
    assert.equal(caught.code, 0, caught.stderr);
    assert.match(caught.stdout, /File f\.txt has been updated/);
    assert.doesNotMatch(caught.stdout, /File g\.txt/);
    assert.equal(Deno.readTextFileSync(replicaFile), "original");
  },
);

sftpTest(
  "--bwlimit: an upload worker asks the run's one rate for its bytes",
  async (work, sshd) => {
    fillSource(`${work}/src`); // 3 MiB in a big file: an upload worker writes it
    const started = performance.now();
    const result = await once(work, sshd, "--bwlimit", "1M");
    const seconds = (performance.now() - started) / 1000;
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await readBackDiff(work, sshd), []);
    // 3 MiB at 1 MiB/s, a tenth of a second's worth at once (the connection's start not counted).
    assert.ok(seconds >= 2.5, `3 MiB sent in ${seconds.toFixed(2)} s at --bwlimit 1M`);
  },
);

sftpTest("--ssh-no-exec: the quick check, MD5s read back; it says so", async (work, sshd) => {
  fillSource(`${work}/src`);
  const first = await once(work, sshd, "--ssh-no-exec");
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /no commands run on .*--ssh-no-exec.*compared by size and mtime/);
  assert.deepEqual(await readBackDiff(work, sshd), []);
  // A size change made on the host is seen; the replica converges.
  Deno.writeTextFileSync(`${sshd.root}/rep/top.txt`, "longer than before");
  Deno.removeSync(`${work}/src/empty`, { recursive: true });
  const again = await once(work, sshd, "--ssh-no-exec");
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /File top\.txt has been updated/);
  assert.deepEqual(await readBackDiff(work, sshd), []);
});

sftpTest(
  "--ssh-no-exec proves replica files it cannot vouch for by reading them back",
  async (work, sshd) => {
    fillSource(`${work}/src`);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal((await once(work, sshd, "--ssh-no-exec")).code, 0);
    // A same-size change on the host, with the mtime kept: the quick check cannot see it ...
    const replicaFile = `${sshd.root}/rep/a/big.bin`;
    const { mtime } = Deno.statSync(replicaFile);
    using file = Deno.openSync(replicaFile, { write: true });
    file.writeSync(new Uint8Array([1, 2, 3]));
    Deno.utimeSync(replicaFile, mtime!, mtime!);
    // ... a new state file vouches for nothing: every file is read back (big.bin in many reads),
    // the equal ones kept, the changed one written again.
    const fresh = await once(work, sshd, "--ssh-no-exec", "--state-file", "fresh.state");
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.match(fresh.stdout, /Cycle finished: 0 copied, 1 updated,/);
    assert.match(fresh.stdout, /File a\/big\.bin has been updated/);
    assert.deepEqual(await readBackDiff(work, sshd), []);
  },
);

sftpTest(
  "--exclude and --max-delete hold on the host as in a local replica",
  async (work, sshd) => {
    writeFile(`${work}/src/keep.txt`, "keep", 0o644, 1_700_000_000_000);
    for (const name of ["x1", "x2", "x3"]) writeFile(`${work}/src/d/${name}`, name);
    assert.equal((await once(work, sshd, "--exclude", "*.log")).code, 0);
    writeFile(`${sshd.root}/rep/notes.log`, "the host's own");
    writeFile(`${work}/src/skipped.log`, "never sent");
    Deno.removeSync(`${work}/src/d`, { recursive: true });
    const limited = await once(work, sshd, "--exclude", "*.log", "--max-delete", "2");
    assert.notEqual(limited.code, 0);
    assert.ok(Deno.statSync(`${sshd.root}/rep/d/x3`).isFile, "over --max-delete: nothing deleted");
    const allowed = await once(work, sshd, "--exclude", "*.log");
    assert.equal(allowed.code, 0, allowed.stdout);
    assert.throws(() => Deno.statSync(`${sshd.root}/rep/d`), Deno.errors.NotFound);
    assert.equal(Deno.readTextFileSync(`${sshd.root}/rep/notes.log`), "the host's own");
    assert.throws(() => Deno.statSync(`${sshd.root}/rep/skipped.log`), Deno.errors.NotFound);
  },
);

sftpTest(
  "sftp://USER@HOST:PORT/~/PATH is in the login folder; --dry-run writes nothing there",
  async (work, sshd) => {
    writeFile(`${work}/src/x.txt`, "x", 0o644, 1_700_000_000_000);
    const home = decoder.decode(
      new Deno.Command("sh", { args: ["-c", `getent passwd ${USER} | cut -d: -f6`] }).outputSync()
        .stdout,
    ).trim();
    const rel = `scp-form-${crypto.randomUUID()}`;
    try {
      const base = sftpArgs(sshd, "unused").filter((arg) => !arg.startsWith("sftp://"));
      const at = base.indexOf("--replica") + 1;
      base.splice(at, 0, `sftp://${USER}@127.0.0.1:${sshd.port}/~/${rel}`);
      const dry = await run(work, [...base, "--once", "--dry-run"]);
      assert.equal(dry.code, 0, dry.stderr);
      assert.throws(() => Deno.statSync(`${home}/${rel}`), Deno.errors.NotFound);
      const real = await run(work, [...base, "--once"]);
      assert.equal(real.code, 0, real.stderr);
      assert.equal(Deno.readTextFileSync(`${home}/${rel}/x.txt`), "x");
    } finally {
      Deno.removeSync(`${home}/${rel}`, { recursive: true });
    }
  },
);

sftpTest(
  "host keys: unknown and changed keys refuse with one line; hashed entries work",
  async (work, sshd) => {
    writeFile(`${work}/src/x.txt`, "x");
    Deno.writeTextFileSync(`${work}/empty_known_hosts`, "");
    const unknown = await once(work, sshd, "--ssh-known-hosts", "empty_known_hosts");
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.equal(unknown.stderr.trim().split("\n").length, 1, unknown.stderr);
    assert.match(unknown.stderr, /is not in 'empty_known_hosts'.*ssh-keyscan -p \d+ 127\.0\.0\.1/);
    assert.doesNotMatch(unknown.stderr, /\n\s+at /);

    const otherKey = await makeKey(`${work}/other_key`);
    Deno.writeTextFileSync(`${work}/changed_known_hosts`, `${sshd.hostPattern} ${otherKey}\n`);
    const changed = await once(work, sshd, "--ssh-known-hosts", "changed_known_hosts");
    assert.equal(changed.code, 2, changed.stderr);
    assert.match(changed.stderr, /has CHANGED .*ssh-keygen -f 'changed_known_hosts' -R/);
    assert.throws(() => Deno.statSync(`${sshd.root}/rep`), Deno.errors.NotFound);

    Deno.writeTextFileSync(
      `${work}/hashed_known_hosts`,
      `${sshd.knownHostsLine({ hashed: true })}\n`,
    );
    const hashed = await once(work, sshd, "--ssh-known-hosts", "hashed_known_hosts");
    assert.equal(hashed.code, 0, hashed.stderr);
  },
);

sftpTest(
  "no key, no HOME, no network permission: one line each, nothing written",
  async (work, sshd) => {
    writeFile(`${work}/src/x.txt`, "x");
    const args = sftpArgs(sshd, "rep", "--once");
    const withoutKey = args.filter((arg, i) => arg !== "--ssh-key" && args[i - 1] !== "--ssh-key");
    const noKey = await run(work, withoutKey);
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /--ssh-key FILE is needed \(or --allow-env=HOME/);
    const noNet = await run(work, args.filter((arg) => !arg.startsWith("--allow-net")));
    assert.equal(noNet.code, 2);
    assert.match(
      noNet.stderr,
      /network access to 127\.0\.0\.1:\d+ is not granted: run with --allow-net=/,
    );
    const wrongUser = await run(
      work,
      args.map((arg) => arg.replace(`sftp://${USER}@`, "sftp://root@")),
    );
    assert.equal(wrongUser.code, 2);
    assert.match(wrongUser.stderr, /root@\[127\.0\.0\.1\]:\d+ refused the key/);
    assert.throws(() => Deno.statSync(`${sshd.root}/rep`), Deno.errors.NotFound);
  },
);

sftpTest(
  "--verify passes on a mirrored replica and fails on a tampered one",
  async (work, sshd) => {
    fillSource(`${work}/src`);
    assert.equal((await once(work, sshd)).code, 0);
    const good = await run(work, sftpArgs(sshd, "rep", "--verify"));
    assert.equal(good.code, 0, good.stdout + good.stderr);
    Deno.writeTextFileSync(`${sshd.root}/rep/a/b/c/d/deep.txt`, "four folders DEEP");
    const bad = await run(work, sftpArgs(sshd, "rep", "--verify"));
    assert.notEqual(bad.code, 0);
    assert.match(bad.stdout + bad.stderr, /a\/b\/c\/d\/deep\.txt/);
  },
);

sftpTest(
  "a permission denied on the host fails that entry only, in one line",
  async (work, sshd) => {
    writeFile(`${work}/src/ok.txt`, "ok", 0o644, 1_700_000_000_000);
    writeFile(`${work}/src/locked/in.txt`, "in", 0o644, 1_700_000_000_000);
    // A folder the login user cannot write into.
    Deno.mkdirSync(`${sshd.root}/rep/locked`, { recursive: true });
    Deno.chownSync(`${sshd.root}/rep`, Deno.statSync(sshd.root).uid, null);
    Deno.chmodSync(`${sshd.root}/rep/locked`, 0o755);
    const result = await once(work, sshd);
    assert.notEqual(result.code, 0);
    assert.equal(Deno.readTextFileSync(`${sshd.root}/rep/ok.txt`), "ok");
    const failed = messages(work).filter((line) =>
      /Permission denied|permission denied/.test(line)
    );
    assert.ok(failed.some((line) => line.includes("locked")), messages(work).join("\n"));
    assert.doesNotMatch(result.stderr, /\n\s+at /);
  },
);

sftpTest(
  "a full remote disk: the big file fails with a clear line, the rest is mirrored",
  async (work, sshd) => {
    writeFile(`${work}/src/small.txt`, "small", 0o644, 1_700_000_000_000);
    const big = new Uint8Array(6 << 20).fill(7);
    Deno.writeFileSync(`${work}/src/big.bin`, big);
    const full = await once(work, sshd);
    assert.notEqual(full.code, 0);
    assert.match(messages(work).join("\n"), /big\.bin.*no space left on the replica's disk/);
    assert.equal(Deno.readTextFileSync(`${sshd.root}/rep/small.txt`), "small");
    const left = [...Deno.readDirSync(`${sshd.root}/rep`)].map((entry) => entry.name);
    assert.deepEqual(left.sort(), ["small.txt"]);
    // Room again (the big file goes): the next cycle converges.
    Deno.removeSync(`${work}/src/big.bin`);
    const after = await once(work, sshd);
    assert.equal(after.code, 0, after.stdout);
    assert.deepEqual(diffInSeconds(`${work}/src`, `${sshd.root}/rep`), []);
  },
  { diskSize: "4m" },
);

/** Wait until a file is being uploaded into the replica `rep` (a temp file with bytes in it). */
function uploadUnderWay(sshd: Sshd): Promise<void> {
  return waitFor(
    "an upload under way",
    () => {
      try {
        return copyUnderWay(`${sshd.root}/rep`)();
      } catch {
        return false; // the replica folder is not there yet
      }
    },
    20_000,
    5,
  );
}

/** A source whose copy takes a while: a file of 48 MiB and some small ones. */
function slowSource(src: string): void {
  const chunk = new Uint8Array(1 << 20);
  using file = Deno.openSync(`${src}/slow.bin`, { write: true, create: true });
  for (let i = 0; i < 48; i++) {
    crypto.getRandomValues(chunk.subarray(0, 65536));
    file.writeSync(chunk);
  }
  for (let i = 0; i < 20; i++) writeFile(`${src}/d${i % 4}/f${i}.txt`, `file ${i}`);
}

for (const fault of ["the server is killed", "the connection drops"] as const) {
  sftpTest(`${fault} mid-upload: the running mirror goes on and converges`, async (work, sshd) => {
    slowSource(`${work}/src`);
    const child = command(work, sftpArgs(sshd, "rep", "--time-interval", "1")).spawn();
    const output = child.output();
    try {
      await uploadUnderWay(sshd);
      if (fault === "the server is killed") {
        sshd.kill();
        await waitFor(
          "a failure logged",
          () => messages(work).some((line) => /fail|connection|could not/i.test(line)),
          20_000,
        );
        await sshd.restart();
      } else {
        assert.ok(sshd.dropConnections() > 0);
      }
      await waitFor(
        "the replica converged",
        () => {
          try {
            return diffInSeconds(`${work}/src`, `${sshd.root}/rep`).length === 0;
          } catch {
            return false;
          }
        },
        60_000,
        200,
      );
    } finally {
      child.kill("SIGINT");
    }
    const { code } = await output;
    assert.equal(code, 0, messages(work).join("\n"));
    assert.deepEqual(
      [...listTree(`${sshd.root}/rep`).keys()].filter((path) => path.includes(".mirror.tmp.")),
      [],
    );
  });
}

sftpTest(
  "kill -9 mid-upload: no partial file under a real name; the temp is swept next run",
  async (work, sshd) => {
    slowSource(`${work}/src`);
    const child = command(work, sftpArgs(sshd, "rep", "--once")).spawn();
    const output = child.output();
    await uploadUnderWay(sshd);
    child.kill("SIGKILL");
    await output;
    const names = [...Deno.readDirSync(`${sshd.root}/rep`)].map((entry) => entry.name);
    assert.ok(names.some((name) => name.startsWith(".mirror.tmp.")), names.join(", "));
    assert.ok(!names.includes("slow.bin"), "a partial file under its real name");
    const next = await once(work, sshd);
    assert.equal(next.code, 0, next.stdout + next.stderr);
    assert.deepEqual(diffInSeconds(`${work}/src`, `${sshd.root}/rep`), []);
  },
);

sftpTest(
  "SIGTERM mid-upload stops within a second or two, no temp file left, exit 0",
  async (work, sshd) => {
    slowSource(`${work}/src`);
    const child = command(work, sftpArgs(sshd, "rep", "--once")).spawn();
    const output = child.output();
    await uploadUnderWay(sshd);
    const signalled = Date.now();
    child.kill("SIGTERM");
    const { code } = await output;
    const took = Date.now() - signalled;
    assert.equal(code, 0, messages(work).join("\n"));
    assert.ok(took < 2500, `stopped after ${took} ms`);
    assert.match(messages(work).at(-1) ?? "", /stopped by SIGTERM/);
    const names = [...Deno.readDirSync(`${sshd.root}/rep`)].map((entry) => entry.name);
    assert.deepEqual(names.filter((name) => name.startsWith(".mirror.tmp.")), []);
    assert.ok(!names.includes("slow.bin"), "a partial file under its real name");
  },
);

sftpTest("nested replicas on one host are refused, as for local ones", async (work, sshd) => {
  writeFile(`${work}/src/x.txt`, "x");
  const outer = command(work, sftpArgs(sshd, "rep", "--time-interval", "60")).spawn();
  const output = outer.output();
  try {
    await waitFor(
      "the first cycle",
      () => messages(work).some((m) => m.startsWith("Cycle finished")),
    );
    const inner = await run(
      work,
      sftpArgs(
        sshd,
        "rep/inner",
        "--once",
        "--log-file",
        "inner.txt",
        "--state-file",
        "inner.state",
      ),
    );
    assert.equal(inner.code, 2, inner.stderr);
    assert.match(
      inner.stderr,
      /is inside '.*\/rep' on mirrortest@.*the replica of another running mirror/,
    );
    const same = await run(
      work,
      sftpArgs(sshd, "rep", "--once", "--log-file", "other.txt", "--state-file", "other.state"),
    );
    assert.equal(same.code, 2, same.stderr);
    assert.match(same.stderr, /is being written by another mirror \(pid \d+/);
  } finally {
    outer.kill("SIGINT");
  }
  assert.equal((await output).code, 0);
  // Its lock is released: the inner replica can run now.
  const later = await run(
    work,
    sftpArgs(sshd, "rep/inner", "--once", "--log-file", "inner.txt", "--state-file", "inner.state"),
  );
  assert.equal(later.code, 0, later.stderr);
});

sftpTest("the agent logs in where SSH_AUTH_SOCK is granted (no --ssh-key)", async (work, sshd) => {
  writeFile(`${work}/src/x.txt`, "x", 0o644, 1_700_000_000_000);
  const socket = `${work}/agent.sock`;
  const agent = new Deno.Command("ssh-agent", {
    args: ["-D", "-a", socket],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await waitFor("the agent's socket", () => Deno.lstatSync(socket).isSocket === true);
    const added = new Deno.Command("ssh-add", {
      args: [sshd.keyPath],
      env: { SSH_AUTH_SOCK: socket },
      stdout: "null",
      stderr: "piped",
    }).outputSync();
    assert.ok(added.success, decoder.decode(added.stderr));
    const args = sftpArgs(sshd, "rep", "--once");
    const withoutKey = args.filter((arg, i) => arg !== "--ssh-key" && args[i - 1] !== "--ssh-key");
    // The agent's socket is a network permission of its own (`unix:PATH`).
    const net = withoutKey.findIndex((arg) => arg.startsWith("--allow-net="));
    withoutKey[net] = `${withoutKey[net]},unix:${socket}`;
    withoutKey.splice(1, 0, "--allow-env=SSH_AUTH_SOCK");
    const output = await new Deno.Command(Deno.execPath(), {
      args: withoutKey,
      cwd: work,
      env: { SSH_AUTH_SOCK: socket },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 0, decoder.decode(output.stderr));
    assert.equal(Deno.readTextFileSync(`${sshd.root}/rep/x.txt`), "x");
  } finally {
    agent.kill();
    await agent.status;
  }
});

sftpTest(
  "a replica root given as a symlink is the folder it names: listed, kept, cleaned",
  async (work, sshd) => {
    writeFile(`${work}/src/a/x.txt`, "x", 0o644, 1_700_000_000_000);
    writeFile(`${work}/src/y.txt`, "y", 0o644, 1_700_000_000_000);
    Deno.mkdirSync(`${sshd.root}/real`);
    Deno.chownSync(`${sshd.root}/real`, Deno.statSync(sshd.root).uid, null);
    Deno.symlinkSync("real", `${sshd.root}/link`);
    await new Promise((resolve) => setTimeout(resolve, 1100)); // settled sources
    assert.equal((await run(work, sftpArgs(sshd, "link", "--once"))).code, 0);
    const again = await run(work, sftpArgs(sshd, "link", "--once"));
    assert.match(again.stdout, /Cycle finished: 0 copied, 0 updated/);
    Deno.removeSync(`${work}/src/y.txt`);
    const removed = await run(work, sftpArgs(sshd, "link", "--once"));
    assert.match(removed.stdout, /File y\.txt has been removed/);
    assert.ok(Deno.lstatSync(`${sshd.root}/link`).isSymlink, "the symlink itself is left alone");
    assert.deepEqual(diffInSeconds(`${work}/src`, `${sshd.root}/real`), []);
  },
);

sftpTest(
  "remote MD5s of many long names (xargs splits the batch) all come back",
  async (work, sshd) => {
    for (let i = 0; i < 600; i++) {
      writeFile(`${work}/src/long/${"n".repeat(200)}-${i}.txt`, `${i}`, 0o644, 1_700_000_000_000);
    }
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal((await once(work, sshd)).code, 0);
    // A new state file: nothing vouches for the replica's files, each is proved by its MD5.
    const fresh = await once(work, sshd, "--state-file", "fresh.state");
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.match(fresh.stdout, /Cycle finished: 0 copied, 0 updated/);
  },
);

/**
 * The mirror with its replica in a bucket of a real Ceph cluster (`radosgw`
 * on 127.0.0.1), run as users run it: the CLI with read, write and network
 * access to the endpoint only, credentials in a file. The replica is read
 * back by a tool not under test (Debian's rclone, `--links --metadata`) and
 * folder markers by the transport.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { LocalTree } from "../../lib/backends/local/local.ts";
import { Mirror } from "../../lib/engine/mirror.ts";
import { S3Store } from "../../lib/backends/s3/store.ts";
import { ObjectMemory } from "../../lib/backends/s3/memory.ts";
import { BucketLock, lockKey } from "../../lib/backends/s3/lock.ts";
import { metaOf } from "../../lib/backends/s3/layout.ts";
import { S3Replica } from "../../lib/backends/s3/replica.ts";
import type { MirrorLog } from "../../lib/engine/report.ts";
import { MirrorState } from "../../lib/state/state.ts";
import { stablePathOf } from "../../lib/core/paths.ts";
import { cephMissing, sharedCeph } from "../ceph.ts";
import {
  afterCtimeSecond,
  type Item,
  listTree,
  logLines,
  MAIN,
  type RunResult,
  s3ProgramArgs,
  succeeds,
  waitFor,
  writeFile,
} from "../helpers.ts";

const missing = cephMissing() ??
  (succeeds("rclone", "version") ? undefined : "needs rclone: apt-get install rclone");
if (missing !== undefined) console.warn(`s3 mirror tests skipped: ${missing}`);
const decoder = new TextDecoder(), encoder = new TextEncoder();
const md5 = (bytes: Uint8Array) => createHash("md5").update(bytes).digest("hex");

/** The command line the README gives for a bucket, credentials in a file. */
function s3Command(work: string, endpoint: string, args: readonly string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: s3ProgramArgs(
      endpoint,
      ...(args.includes("--source") ? [] : ["--source", "src"]),
      ...(args.includes("--s3-credentials") ? [] : ["--s3-credentials", "credentials"]),
      ...args,
    ),
    cwd: work,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

function s3Run(work: string, endpoint: string, ...args: string[]): Promise<RunResult> {
  return runOf(s3Command(work, endpoint, args));
}

/** Run `command` to its end. */
async function runOf(command: Deno.Command): Promise<RunResult> {
  const output = await command.output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** What rclone copies out of the bucket, compared with the source: files
 * (bytes, mode, mtime to the millisecond), symlinks (targets), and the
 * folders that hold anything (rclone 1.60 neither lists empty folders'
 * markers nor sets folder attributes). One line per difference. */
async function rcloneDiff(
  work: string,
  remote: string,
  source = `${work}/src`,
  leftOut: (path: string) => boolean = () => false,
): Promise<string[]> {
  const back = await Deno.makeTempDir({ dir: work, prefix: "back-" });
  try {
    const output = await new Deno.Command("env", {
      args: ["AWS_CA_BUNDLE=", "rclone", "--config", "/dev/null", "copy", "--links", "--metadata"]
        .concat([remote, back]),
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 0, decoder.decode(output.stderr));
    const shape = (items: Map<string, Item>) => {
      const kept = new Map<string, string>();
      for (const [path, item] of items) {
        if (leftOut(path)) continue;
        if (item.kind === "dir") {
          const holds = [...items.keys()].some((other) => other.startsWith(`${path}/`));
          if (holds) kept.set(path, "dir");
        } else if (item.kind === "file") {
          kept.set(path, `file ${item.md5} ${item.mode?.toString(8)} ${Math.floor(item.mtimeMs!)}`);
        } else if (item.kind === "symlink") kept.set(path, `symlink ${item.target}`);
      }
      return kept;
    };
    const want = shape(listTree(source)), have = shape(listTree(back));
    const diff: string[] = [];
    for (const [path, item] of want) {
      if (have.get(path) !== item) diff.push(`${path}: want ${item}, have ${have.get(path)}`);
    }
    for (const path of have.keys()) if (!want.has(path)) diff.push(`${path}: not in the source`);
    return diff;
  } finally {
    await Deno.remove(back, { recursive: true });
  }
}

/** Every object under the store's prefix with its ETag: to prove nothing changed. */
async function bucketSnapshot(store: S3Store): Promise<string> {
  const lines: string[] = [];
  for (const path of await store.pathsUnder("")) {
    const head = await store.head(path);
    lines.push(`${path} ${head?.etag} ${JSON.stringify(head?.meta)}`);
  }
  return lines.join("\n");
}

Deno.test({
  name: "s3 mirror: a replica in a bucket of a real Ceph cluster",
  ignore: missing !== undefined, // the reason: cephMissing(), or rclone missing
  // The cluster is shared by all S3 tests and outlives each.
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const ceph = await sharedCeph();
    const { endpoint, credentials } = ceph;
    const work = await Deno.makeTempDir({ prefix: "s3-mirror-test-" });
    try {
      await Deno.writeTextFile(
        `${work}/credentials`,
        `[default]\naws_access_key_id = ${credentials.accessKeyId}\n` +
          `aws_secret_access_key = ${credentials.secretAccessKey}\n`,
      );
      const src = `${work}/src`;
      const bucket = "mirror-cli", prefix = "backups/home";
      const replica = `s3://${bucket}/${prefix}`;
      const options = { endpoint, region: "us-east-1", bucket, credentials };
      const store = new S3Store({ ...options, prefix });
      const remote =
        `:s3,provider=Ceph,endpoint='${endpoint}',access_key_id=${credentials.accessKeyId},` +
        `secret_access_key=${credentials.secretAccessKey}:${bucket}/${prefix}`;
      const odd = "sp ace é+&(1)!.txt";
      writeFile(`${src}/a.txt`, "hello", 0o640, 1_700_000_000_123);
      writeFile(`${src}/d/b.txt`, "bee", 0o600, 1_700_000_001_000);
      Deno.linkSync(`${src}/d/b.txt`, `${src}/also-b.txt`); // a hard link: its own object
      writeFile(`${src}/d/${odd}`, "odd", 0o644, 1_700_000_002_500);
      Deno.mkdirSync(`${src}/empty`, { mode: 0o700 });
      Deno.chmodSync(`${src}/empty`, 0o700);
      Deno.symlinkSync("a.txt", `${src}/link`);
      Deno.symlinkSync("d", `${src}/d-link`);
      writeFile(`${src}/bad.rclonelink`, "not a link");
      const big = new Uint8Array(20 << 20).map((_, i) => (i * 7919) & 0xff);
      Deno.mkdirSync(`${src}/d/e`, { recursive: true });
      Deno.writeFileSync(`${src}/d/e/big.bin`, big); // one PUT streamed from disk
      const leftOut = (path: string) => path === "bad.rclonelink";

      await t.step(
        "mirrors files, folders, symlinks, modes and mtimes; rclone reads them",
        async () => {
          const run = await s3Run(work, endpoint, "--replica", replica, "--once");
          assert.equal(run.code, 0, run.stderr);
          // The one source name a bucket cannot hold: said once, left out.
          const refused = run.stderr.split("\n").filter((line) => line.includes("bad.rclonelink"));
          assert.equal(refused.length, 1, run.stderr);
          assert.match(refused[0]!, /\[WARNING\]: File bad\.rclonelink is not mirrored: .*symlink/);
          assert.deepEqual(await rcloneDiff(work, remote, src, leftOut), []);
          // Every folder, the empty one too, is a marker with the source's mode and mtime.
          for (const dir of ["d", "d/e", "empty"]) {
            const head = await store.head(`${dir}/`);
            const info = Deno.statSync(`${src}/${dir}`);
            assert.equal(head?.meta.mode, (0o40000 | (info.mode! & 0o7777)).toString(8), dir);
            assert.equal(Math.round(Number(head?.meta.mtime) * 1000), info.mtime!.getTime(), dir);
          }
          // Each name of a file with two names is an object of its own.
          assert.equal(
            (await store.head("also-b.txt"))?.etag,
            md5(new TextEncoder().encode("bee")),
          );
          // Streamed from disk in one PUT: the store's MD5 (the ETag) is the file's, and recorded.
          const streamed = await store.head("d/e/big.bin");
          assert.equal(streamed!.etag, md5(big));
          assert.equal(Uint8Array.fromBase64(streamed!.meta.md5chksum!).toHex(), md5(big));
          // The lock is outside the tree, and gone once the run ended.
          const outside = new S3Store({ ...options, prefix: "" });
          assert.equal(await outside.head(lockKey(prefix)), undefined);
          const verify = await s3Run(work, endpoint, "--replica", replica, "--verify");
          assert.equal(verify.code, 0, verify.stdout + verify.stderr);
          assert.match(verify.stdout, /identical/);
        },
      );

      await t.step(
        "the next run reads no object: listings and what the state file kept",
        async () => {
          const run = await s3Run(work, endpoint, "--replica", replica, "--once");
          assert.equal(run.code, 0, run.stderr);
          assert.match(
            run.stderr + run.stdout,
            /Cycle finished: 0 copied, 0 updated, 0 linked, 0 removed/,
          );
          // The same again in this process, counting what is asked of the store.
          const asked: string[] = [];
          class Counting extends S3Store {
            override head(path: string) {
              asked.push(`HEAD ${path}`);
              return super.head(path);
            }
            override read(path: string) {
              asked.push(`GET ${path}`);
              return super.read(path);
            }
            override get(path: string) {
              asked.push(`GET ${path}`);
              return super.get(path);
            }
          }
          const id = `${endpoint}/${bucket}/${prefix}`;
          const { state } = await MirrorState.open(`${work}/log.txt.state`, {
            source: stablePathOf(src),
            replica: id,
          });
          try {
            const memory = new ObjectMemory();
            state.remember(memory);
            assert.ok(memory.size >= 8, `the state kept ${memory.size} objects`);
            const s3 = new S3Replica({
              store: new Counting({ ...options, prefix }),
              where: replica,
              id,
              prefixed: true,
              memory,
            });
            const mirror = new Mirror(new LocalTree(src), s3, { state, log: quietLog() });
            const result = await mirror.cycle();
            assert.equal(result.copied + result.updated + result.removed + result.created, 0);
            assert.deepEqual(asked, []);
            // An identical object another tool wrote is examined in one cycle, then known.
            writeFile(`${src}/theirs.txt`, "theirs", 0o640, 1_700_000_003_250);
            const info = Deno.statSync(`${src}/theirs.txt`);
            await store.put(
              "theirs.txt",
              encoder.encode("theirs"),
              metaOf({
                kind: "file",
                size: 6,
                mtimeMs: 1_700_000_003_250,
                ctimeMs: 0,
                ino: 0,
                mode: 0o640,
              }),
            );
            assert.equal(info.size, 6);
            await afterCtimeSecond(`${src}/theirs.txt`); // settled: its pair can be recorded
            const first = await mirror.cycle();
            assert.equal(first.copied + first.updated + first.removed + first.created, 0);
            // The walk examines it, the comparison checks it did not change meanwhile.
            assert.deepEqual(asked, ["HEAD theirs.txt", "HEAD theirs.txt"]);
            await mirror.cycle();
            assert.equal(asked.length, 2, "the second cycle asks nothing more");
          } finally {
            state.close();
          }
        },
      );

      await t.step("objects changed behind its back are replaced", async () => {
        const a = await store.head("a.txt");
        // Same size and metadata, other bytes; a mode changed; one gone; two extra.
        await store.put("a.txt", encoder.encode("HELLO"), a!.meta);
        const b = await store.head("d/b.txt");
        await store.setMeta("d/b.txt", { ...b!.meta, mode: "100666" });
        await store.deleteMany(["d/e/big.bin"]);
        await store.put("extra.txt", encoder.encode("x"));
        await store.put("x/y.txt", encoder.encode("y"));
        const run = await s3Run(work, endpoint, "--replica", replica, "--once");
        assert.equal(run.code, 0, run.stderr);
        const log = logLines(`${work}/log.txt`).slice(-8).join("\n");
        assert.match(log, /File a\.txt has been updated/);
        assert.match(log, /Attributes of file d\/b\.txt have been updated/);
        assert.match(log, /File d\/e\/big\.bin has been copied/);
        assert.match(log, /File extra\.txt has been removed/);
        assert.match(log, /Folder x has been removed/);
        assert.deepEqual(await rcloneDiff(work, remote, src, leftOut), []);
        assert.deepEqual(await store.pathsUnder("x"), []);
      });

      await t.step(
        "a renamed folder's files are moved on the server (copies, no upload), a big one in parts",
        async () => {
          // Files settled and uploaded, then their folder renamed in a later second.
          writeFile(`${src}/photos/small.jpg`, "small photo", 0o644, 1_700_000_004_000);
          const bigPhoto = new Uint8Array(11 << 20).map((_, i) => (i * 31) & 0xff);
          Deno.writeFileSync(`${src}/photos/big.jpg`, bigPhoto);
          await afterCtimeSecond(`${src}/photos/big.jpg`);
          assert.equal((await s3Run(work, endpoint, "--replica", replica, "--once")).code, 0);
          await new Promise((resolve) => setTimeout(resolve, 1000));
          Deno.renameSync(`${src}/photos`, `${src}/albums`);
          // In this process, counting uploads and server-side copies, with a copy
          // limit lowered to 6 MiB (S3's is 5 GiB): the big file is copied in parts.
          const uploads: string[] = [], copies: string[] = [];
          class Counting extends S3Store {
            override put(...args: Parameters<S3Store["put"]>) {
              uploads.push(args[0]);
              return super.put(...args);
            }
            override putFromFile(...args: Parameters<S3Store["putFromFile"]>) {
              uploads.push(args[0]);
              return super.putFromFile(...args);
            }
            override putFile(...args: Parameters<S3Store["putFile"]>) {
              uploads.push(args[0]);
              return super.putFile(...args);
            }
            override copy(...args: Parameters<S3Store["copy"]>) {
              copies.push(`${args[0]} -> ${args[1]}`);
              return super.copy(...args);
            }
          }
          const id = `${endpoint}/${bucket}/${prefix}`;
          const { state } = await MirrorState.open(`${work}/log.txt.state`, {
            source: stablePathOf(src),
            replica: id,
          });
          try {
            const memory = new ObjectMemory();
            state.remember(memory);
            const s3 = new S3Replica({
              store: new Counting({ ...options, prefix }),
              where: replica,
              id,
              prefixed: true,
              memory,
              copy: { limit: 6 << 20, partSize: 5 << 20 },
            });
            const mirror = new Mirror(new LocalTree(src), s3, { state, log: quietLog() });
            const result = await mirror.cycle();
            await state.endCleanly();
            assert.equal(result.moved, 2);
            assert.equal(result.copied + result.bytes, 0);
            // Folder markers (the root's is "") carry attributes; no file is uploaded.
            assert.deepEqual(uploads.filter((path) => path !== "" && !path.endsWith("/")), []);
            assert.deepEqual(copies.sort(), [
              "photos/big.jpg -> albums/big.jpg",
              "photos/small.jpg -> albums/small.jpg",
            ]);
          } finally {
            state.close();
          }
          // The copies hold the bytes and metadata (the big one put together from its parts).
          const moved = await store.head("albums/big.jpg");
          assert.match(moved!.etag, /-3$/, "a multipart copy of 3 parts");
          assert.equal(Uint8Array.fromBase64(moved!.meta.md5chksum!).toHex(), md5(bigPhoto));
          assert.equal(await store.head("photos/big.jpg"), undefined);
          assert.deepEqual(await rcloneDiff(work, remote, src, leftOut), []);
          const again = await s3Run(work, endpoint, "--replica", replica, "--once");
          assert.match(
            again.stdout,
            /Cycle finished: 0 copied, 0 updated, 0 linked, 0 removed, 0 moved/,
          );
        },
      );

      await t.step("--verify reads every object back: a lying MD5 record is caught", async () => {
        // Other bytes of the same size, uploaded in parts, with the source's MD5 in its metadata.
        const other = `${work}/other.bin`;
        Deno.writeFileSync(other, big.map((byte) => byte ^ 1));
        const meta = (await store.head("d/e/big.bin"))!.meta;
        await store.putFile("d/e/big.bin", other, big.length, meta, { partSize: 5 << 20 });
        Deno.removeSync(other);
        const verify = await s3Run(work, endpoint, "--replica", replica, "--verify");
        assert.equal(verify.code, 1, verify.stdout + verify.stderr);
        assert.match(verify.stdout, /d\/e\/big\.bin/);
        assert.match(verify.stdout, /1 difference/);
        // Put right for the steps that follow.
        await store.putFile("d/e/big.bin", `${src}/d/e/big.bin`, big.length, meta);
      });

      await t.step("--dry-run sends nothing that writes", async () => {
        writeFile(`${src}/new.txt`, "new");
        await store.put("stale.txt", encoder.encode("stale"));
        const before = await bucketSnapshot(new S3Store({ ...options, prefix: "" }));
        const run = await s3Run(work, endpoint, "--replica", replica, "--dry-run");
        assert.equal(run.code, 0, run.stderr);
        assert.match(run.stdout + run.stderr, /Would copy file new\.txt|new\.txt/);
        assert.equal(await bucketSnapshot(new S3Store({ ...options, prefix: "" })), before);
      });

      await t.step(
        "--max-delete and --exclude hold: excluded objects are never deleted",
        async () => {
          await store.put("keep.log", encoder.encode("kept"));
          const refused = await s3Run(
            work,
            endpoint,
            "--replica",
            replica,
            "--once",
            "--exclude",
            "*.log",
            "--max-delete",
            "0",
          );
          assert.equal(refused.code, 1, refused.stderr);
          assert.match(refused.stderr, /more than --max-delete 0; nothing was deleted/);
          assert.ok(await store.head("stale.txt"), "nothing deleted");
          const run = await s3Run(
            work,
            endpoint,
            "--replica",
            replica,
            "--once",
            "--exclude",
            "*.log",
          );
          assert.equal(run.code, 0, run.stderr);
          assert.equal(await store.head("stale.txt"), undefined);
          assert.ok(await store.head("keep.log"), "the excluded object stays");
          await store.deleteMany(["keep.log"]);
        },
      );

      await t.step(
        "one writer: another mirror is refused; a killed run's lock is its own again",
        async () => {
          // Each mirror with its own log and state file.
          const mirror = (log: string, ...args: string[]) =>
            s3Command(work, endpoint, ["--replica", replica, "--log-file", log, ...args]);
          const first = mirror("lock1.txt", "--time-interval", "60").spawn();
          const output = first.output();
          try {
            await waitFor("the first mirror's cycle", logHas(work, "lock1.txt", "Cycle finished"));
            const second = await runOf(mirror("lock2.txt", "--once"));
            assert.equal(second.code, 2);
            const lines = second.stderr.trim().split("\n");
            assert.equal(lines.length, 1, second.stderr);
            assert.match(lines[0]!, /is being written by another mirror \(pid \d+/);
          } finally {
            kill(first, "SIGKILL");
            await output;
          }
          // Killed: its lock stays, but a run of the same state file takes it over.
          const outside = new S3Store({ ...options, prefix: "" });
          assert.ok(await outside.head(lockKey(prefix)), "the lock was left");
          const again = await runOf(mirror("lock1.txt", "--once"));
          assert.equal(again.code, 0, again.stderr);
          assert.match(
            again.stderr,
            /\[WARNING\]: The lock of replica .* was taken over \(pid \d+, an earlier run of this state file\); it was deleted\./,
          );
          assert.equal(await outside.head(lockKey(prefix)), undefined);
          const other = await runOf(mirror("lock2.txt", "--once"));
          assert.equal(other.code, 0, other.stderr);
        },
      );

      await t.step("a lock nobody renews lapses; one renewed is kept", async () => {
        const bucketRoot = new S3Store({ ...options, prefix: "" });
        const key = lockKey("lapse");
        const first = new BucketLock(bucketRoot, key, "run-a", 1_000);
        assert.equal(await first.acquire(() => false), undefined);
        const second = new BucketLock(bucketRoot, key, "run-b", 1_000);
        assert.match((await second.acquire(() => false)) ?? "", /^pid \d+; its lock lapses/);
        await new Promise((resolve) => setTimeout(resolve, 1_200)); // not renewed: lapsed
        assert.equal(await second.acquire(() => false), undefined);
        await assert.rejects(first.renew(), /another mirror .* holds the replica's lock/);
        await second.release();
        assert.equal(await bucketRoot.head(key), undefined);
      });

      await t.step(
        "kill -9 during a multipart upload: the next cycle aborts what was left",
        async () => {
          // Above the 200 MiB cut-off: uploaded in parts.
          const huge = new Uint8Array(210 << 20);
          for (let at = 0; at < huge.length; at += 4096) huge[at] = (at >> 12) & 0xff;
          Deno.writeFileSync(`${src}/huge.bin`, huge);
          const child = s3Command(work, endpoint, ["--replica", replica, "--once"]).spawn();
          const output = child.output();
          try {
            const started = Date.now();
            while ((await store.uploads()).length === 0) {
              assert.ok(Date.now() - started < 60_000, "the upload started");
              await new Promise((resolve) => setTimeout(resolve, 20));
            }
          } finally {
            kill(child, "SIGKILL");
            await output;
          }
          assert.equal((await store.uploads()).length, 1);
          assert.equal(await store.head("huge.bin"), undefined); // never seen half-written
          const run = await s3Run(work, endpoint, "--replica", replica, "--once");
          assert.equal(run.code, 0, run.stderr);
          assert.match(
            run.stdout + run.stderr,
            /Incomplete upload of huge\.bin left by an earlier run has been aborted/,
          );
          assert.deepEqual(await store.uploads(), []);
          // Uploaded in parts: the object records the MD5 its ETag is not.
          const multipart = await store.head("huge.bin");
          assert.equal(multipart?.size, huge.length);
          assert.match(multipart!.etag, /-\d+$/);
          assert.equal(Uint8Array.fromBase64(multipart!.meta.md5chksum!).toHex(), md5(huge));
          Deno.removeSync(`${src}/huge.bin`);
        },
      );

      await t.step(
        "radosgw stopped mid-cycle: errors, the run goes on, the next cycle converges",
        async () => {
          for (let i = 0; i < 8; i++) {
            Deno.writeFileSync(`${src}/part${i}.bin`, new Uint8Array(20 << 20).fill(i + 1));
          }
          const child = s3Command(work, endpoint, [
            "--replica",
            replica,
            "--time-interval",
            "1",
            "--log-file",
            "gateway.txt",
          ]).spawn();
          const output = child.output();
          try {
            await waitFor("a file copied", logHas(work, "gateway.txt", "has been copied"), 60_000);
            await ceph.stopGateway();
            const stopped = Date.now();
            await waitFor(
              "a cycle that ended with failures",
              logHas(work, "gateway.txt", /Cycle finished: .* [1-9]\d* failed/),
              60_000,
            );
            const errors = logLines(`${work}/gateway.txt`).filter((line) =>
              line.includes("[ERROR]")
            );
            assert.ok(errors.length > 0);
            assert.ok(Date.now() - stopped < 60_000, "the cycle ended soon after the gateway went");
            await ceph.startGateway();
            await waitFor("a cycle after the gateway came back", () => {
              const lines = logLines(`${work}/gateway.txt`);
              const failed = lines.findLastIndex((line) =>
                /failed;/.test(line) && !/ 0 failed/.test(line)
              );
              return lines.slice(failed + 1).some((line) => line.includes("Cycle finished"));
            }, 60_000);
          } finally {
            kill(child, "SIGTERM");
            await output;
          }
          assert.deepEqual(await rcloneDiff(work, remote, src, leftOut), []);
          assert.deepEqual(await store.uploads(), []);
        },
      );
      await t.step("a whole bucket: s3://BUCKET, the locks' folder never an entry", async () => {
        writeFile(`${work}/whole/a.txt`, "a");
        writeFile(`${work}/whole/.folder-mirror-locks/x`, "mine"); // the locks' folder: refused
        const args = ["--source", "whole", "--replica", "s3://mirror-whole", "--log-file", "w.txt"];
        const run = await s3Run(work, endpoint, ...args, "--once");
        assert.equal(run.code, 0, run.stderr);
        assert.match(run.stderr, /File \.folder-mirror-locks is not mirrored: .*locks/);
        const whole = new S3Store({ ...options, bucket: "mirror-whole", prefix: "" });
        assert.deepEqual(await whole.pathsUnder(""), ["a.txt"]);
        const verify = await s3Run(work, endpoint, ...args, "--verify");
        assert.equal(verify.code, 0, verify.stdout + verify.stderr);
      });
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});

Deno.test("s3 mirror: bad S3 settings are one line and exit 2, before anything is written", async () => {
  const work = await Deno.makeTempDir({ prefix: "s3-flags-test-" });
  try {
    Deno.mkdirSync(`${work}/src`);
    await Deno.writeTextFile(
      `${work}/credentials`,
      "[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n",
    );
    const port = (() => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const { port } = listener.addr as Deno.NetAddr;
      listener.close();
      return port;
    })();
    const endpoint = `http://127.0.0.1:${port}`; // nobody listens
    const cases: [string[], RegExp][] = [
      [["--replica", "s3://mirror/x"], /--s3-endpoint: cannot reach http:\/\/127\.0\.0\.1:\d+/],
      [["--replica", "s3://No_Such"], /--replica: 'No_Such' is not a bucket name/],
      [
        ["--replica", "s3://mirror/x", "--s3-credentials", "none"],
        /--s3-credentials: cannot read 'none'/,
      ],
      [
        ["--replica", "s3://mirror/x", "--s3-profile", "other"],
        /no aws_access_key_id .* \[other\]/,
      ],
    ];
    for (const [args, expected] of cases) {
      const run = await s3Run(work, endpoint, ...args, "--once");
      assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
      const lines = run.stderr.trim().split("\n");
      assert.equal(lines.length, 1, run.stderr);
      assert.match(lines[0]!, expected);
    }
    // No credentials file and no env access: told how to give them.
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        `--allow-net=127.0.0.1:${port}`,
        "--no-prompt",
        MAIN,
        "--source",
        "src",
        "--replica",
        "s3://mirror/x",
        "--s3-endpoint",
        endpoint,
        "--once",
      ],
      cwd: work,
      env: { AWS_ACCESS_KEY_ID: "AK", AWS_SECRET_ACCESS_KEY: "SK" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 2);
    assert.match(
      decoder.decode(output.stderr),
      /^folder-mirror: no S3 credentials: .*--allow-env=AWS_ACCESS_KEY_ID/,
    );
    // A bucket sends no file-system events.
    const watch = await s3Run(work, endpoint, "--replica", "s3://mirror/x", "--watch");
    assert.equal(watch.code, 2);
    assert.match(watch.stderr, /^folder-mirror: --watch is for a local replica only/);
    // S3 flags with a local replica.
    const local = await s3Run(work, endpoint, "--replica", "rep", "--once");
    assert.equal(local.code, 2);
    assert.match(local.stderr, /--s3-endpoint is only for a replica s3:\/\/BUCKET\/PREFIX/);
    assert.deepEqual([...Deno.readDirSync(work)].map((e) => e.name).sort(), ["credentials", "src"]);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test({
  name:
    "s3 mirror: nested prefixes in one bucket are refused; names the store refuses are said once (#18)",
  ignore: missing !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { endpoint, credentials } = await sharedCeph();
    const work = await Deno.makeTempDir({ prefix: "s3-nested-test-" });
    try {
      await Deno.writeTextFile(
        `${work}/credentials`,
        `[default]\naws_access_key_id = ${credentials.accessKeyId}\n` +
          `aws_secret_access_key = ${credentials.secretAccessKey}\n`,
      );
      writeFile(`${work}/src/dir00/a.txt`, "a");
      writeFile(`${work}/other/b.txt`, "b");
      for (
        const [first, second, message] of [
          ["rep", "rep/dir00", "is inside 'rep', the replica of another running mirror"],
          ["rep/dir00", "rep", "contains 'rep/dir00', the replica of another running mirror"],
          ["rep", "", "contains 'rep', the replica of another running mirror"],
        ]
      ) {
        const mirror = s3Command(work, endpoint, [
          "--replica",
          `s3://nested/${first}`,
          "--log-file",
          "first.txt",
          "--time-interval",
          "60",
        ]).spawn();
        const output = mirror.output();
        try {
          await waitFor("the first mirror", logHas(work, "first.txt", "Cycle finished"), 30_000);
          const refused = await s3Run(
            work,
            endpoint,
            "--source",
            "other",
            "--replica",
            `s3://nested${second === "" ? "" : `/${second}`}`,
            "--log-file",
            "second.txt",
            "--once",
          );
          assert.equal(refused.code, 2, refused.stdout + refused.stderr);
          assert.equal(refused.stderr.trim().split("\n").length, 1, refused.stderr);
          assert.match(refused.stderr, new RegExp(`${message} \\(pid \\d+\\)`));
        } finally {
          kill(mirror, "SIGINT");
          await output;
        }
        Deno.removeSync(`${work}/first.txt`);
      }
      // An object name longer than S3 allows (1,024 bytes): one WARNING a run, not an ERROR.
      const deep = `${work}/src/${["a", "b", "c", "d"].map((c) => c.repeat(250)).join("/")}`;
      writeFile(`${deep}/${"n".repeat(255)}`, "x");
      const loop = s3Command(work, endpoint, [
        "--replica",
        "s3://nested/long",
        "--log-file",
        "long.txt",
        "--time-interval",
        "0.2",
      ]).spawn();
      const output = loop.output();
      try {
        await waitFor("a few cycles", () => {
          try {
            return logLines(`${work}/long.txt`).filter((l) => l.includes("Cycle")).length >= 1;
          } catch {
            return false;
          }
        }, 30_000);
        writeFile(`${work}/src/more.txt`, "m");
        await waitFor("another cycle", logHas(work, "long.txt", "more.txt has been copied"));
      } finally {
        kill(loop, "SIGINT");
        await output;
      }
      const lines = logLines(`${work}/long.txt`);
      assert.deepEqual(lines.filter((l) => l.includes("[ERROR]")), []);
      const said = lines.filter((l) => l.includes("more than the 1024 S3 allows"));
      assert.equal(said.length, 1, lines.join("\n"));
      // Wrong keys: the refusal says to check them.
      Deno.writeTextFileSync(
        `${work}/bad`,
        "[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n",
      );
      const bad = await s3Run(
        work,
        endpoint,
        "--replica",
        "s3://nested/x",
        "--s3-credentials",
        "bad",
        "--once",
      );
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /403.*: check the access key and secret/);
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});

/** A check that holds once the log file `work/name` has a line matching `text`. */
function logHas(work: string, name: string, text: string | RegExp): () => boolean {
  return () => {
    try {
      return logLines(`${work}/${name}`).some((line) =>
        typeof text === "string" ? line.includes(text) : text.test(line)
      );
    } catch {
      return false; // not made yet
    }
  };
}

/** Signal `child` unless it has ended. */
function kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch {
    // ended already
  }
}

/** A log that drops everything (the in-process cycles). */
function quietLog(): MirrorLog {
  const nothing = () => {};
  return {
    info: nothing,
    warn: nothing,
    error: nothing,
    debug: nothing,
    isEnabledFor: () => false,
  };
}

Deno.test({
  name: "s3 mirror: --backup-dir in the same bucket keeps what a cycle deletes or overwrites",
  ignore: missing !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { endpoint, credentials } = await sharedCeph();
    const work = await Deno.makeTempDir({ prefix: "s3-backup-test-" });
    try {
      await Deno.writeTextFile(
        `${work}/credentials`,
        `[default]\naws_access_key_id = ${credentials.accessKeyId}\n` +
          `aws_secret_access_key = ${credentials.secretAccessKey}\n`,
      );
      const bucket = "backups", options = { endpoint, region: "us-east-1", bucket, credentials };
      const backups = new S3Store({ ...options, prefix: "old" });
      const src = `${work}/src`;
      writeFile(`${src}/a/b/c/d/deep.txt`, "deep v1", 0o640, 1_700_000_000_000);
      writeFile(`${src}/gone/x.txt`, "in a folder removed whole");
      Deno.symlinkSync("a", `${src}/link`);
      const run = (...args: string[]) =>
        s3Run(work, endpoint, "--replica", `s3://${bucket}/home`, "--once", ...args);
      const other = await run("--backup-dir", "s3://elsewhere/old");
      assert.equal(other.code, 2);
      assert.match(
        other.stderr,
        /--backup-dir: 's3:\/\/elsewhere\/old' is not in the replica's bucket/,
      );
      const inside = await run("--backup-dir", `s3://${bucket}/home/.bak`);
      assert.equal(inside.code, 2);
      assert.match(inside.stderr, /inside the replica.*--exclude '\/\.bak\/'/);
      assert.equal((await run("--backup-dir", `s3://${bucket}/old`)).code, 0);

      writeFile(`${src}/a/b/c/d/deep.txt`, "deep v2, four folders down", 0o640, 1_700_000_000_000);
      Deno.removeSync(`${src}/gone`, { recursive: true });
      Deno.removeSync(`${src}/link`);
      const second = await run("--backup-dir", `s3://${bucket}/old`);
      assert.equal(second.code, 0, second.stderr + second.stdout);
      assert.match(second.stdout, / 0 failed, 3 backed up; /);
      const folders = (await backups.list("")).folders;
      assert.equal(folders.length, 1);
      const folder = folders[0]!;
      const text = async (path: string) => decoder.decode((await backups.read(path))!.body);
      assert.equal(await text(`${folder}/a/b/c/d/deep.txt`), "deep v1");
      // As the replica lays it out: metadata copied, a symlink's object, a folder's marker.
      assert.equal((await backups.head(`${folder}/a/b/c/d/deep.txt`))?.meta.mode, "100640");
      assert.equal(await text(`${folder}/gone/x.txt`), "in a folder removed whole");
      assert.equal(await text(`${folder}/link.rclonelink`), "a");
      const replica = new S3Store({ ...options, prefix: "home" });
      assert.equal(await replica.head("gone/x.txt"), undefined);
      assert.equal(await replica.head("link.rclonelink"), undefined);
      assert.equal(await text(`${folder}/gone/`), "");

      // --backup-keep in a bucket: the older cycle folder's objects go.
      await new Promise((resolve) => setTimeout(resolve, 1000 - Date.now() % 1000 + 20));
      writeFile(`${src}/a/b/c/d/deep.txt`, "deep v3, later", 0o640, 1_700_000_000_000);
      const kept = await run("--backup-dir", `s3://${bucket}/old`, "--backup-keep", "1");
      assert.equal(kept.code, 0, kept.stderr + kept.stdout);
      const left = (await backups.list("")).folders;
      assert.equal(left.length, 1);
      assert.notEqual(left[0], folder);
      assert.equal(await text(`${left[0]}/a/b/c/d/deep.txt`), "deep v2, four folders down");
      assert.deepEqual(await backups.pathsUnder(folder), []);
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});

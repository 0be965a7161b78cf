/**
 * The S3 transport (`lib/backends/s3/store.ts`) against a real Ceph cluster's `radosgw` on
 * 127.0.0.1: listing folders (pages, markers, any name), writing with
 * metadata, conditional writes, reading, deleting in batches, and a gateway
 * that goes away and comes back.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { S3Error, S3Store, S3Unreachable } from "../../lib/backends/s3/store.ts";
import { cephMissing, sharedCeph } from "../ceph.ts";
import { succeeds } from "../helpers.ts";

const missing = cephMissing();
if (missing !== undefined) console.warn(`s3 store tests skipped: ${missing}`);
const encoder = new TextEncoder();
const md5 = (bytes: Uint8Array) => createHash("md5").update(bytes).digest("hex");

Deno.test({
  name: "s3 store: on a real Ceph cluster",
  ignore: missing !== undefined, // the reason: cephMissing()
  // The cluster is shared by all S3 tests and outlives each.
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const ceph = await sharedCeph();
    {
      const options = {
        endpoint: ceph.endpoint,
        region: "us-east-1",
        bucket: "mirror-test",
        credentials: ceph.credentials,
      };
      const store = new S3Store({ ...options, prefix: "backups/home" });
      const other = new S3Store({ ...options, prefix: "backups" });
      await store.createBucket();
      await store.createBucket(); // ours already: fine

      const odd = "a b+c&d'(x)*!~é%20.txt";
      await t.step("objects and folders, under the prefix only, any name", async () => {
        const body = encoder.encode("hello");
        const etag = await store.put(odd, body, { mtime: "1700000000.5", mode: "644" });
        assert.equal(etag, md5(body)); // a single-part ETag is the MD5
        await store.put("dir/", new Uint8Array(), { mode: "755" }); // a folder marker
        await store.put("dir/x.txt", encoder.encode("x"));
        await store.put("dir/sub/y.txt", encoder.encode("yy"));
        await other.put("elsewhere.txt", encoder.encode("not in the tree"));

        const root = await store.list("");
        assert.deepEqual(root.objects.map((o) => [o.name, o.size, o.etag]), [
          [odd, 5, md5(body)],
        ]);
        assert.deepEqual(root.folders, ["dir"]);
        assert.equal(root.marker, false);
        const dir = await store.list("dir");
        assert.equal(dir.marker, true);
        assert.deepEqual(dir.objects.map((o) => o.name), ["x.txt"]);
        assert.deepEqual(dir.folders, ["sub"]);
        assert.ok(Math.abs(dir.objects[0]!.lastModified - Date.now()) < 60_000);
        assert.deepEqual((await other.list("")).objects.map((o) => o.name), ["elsewhere.txt"]);
        assert.deepEqual((await other.list("")).folders, ["home"]);
      });

      await t.step("metadata and content read back", async () => {
        const head = await store.head(odd);
        assert.equal(head?.size, 5);
        assert.deepEqual(head?.meta, { mtime: "1700000000.5", mode: "644" });
        assert.equal(await store.head("nothing.txt"), undefined);
        const text = await new Response(await store.get(odd)).text();
        assert.equal(text, "hello");
        await assert.rejects(
          store.get("nothing.txt"),
          (e) => e instanceof S3Error && e.status === 404,
        );
      });

      await t.step(
        "a body that does not match its MD5 is refused; the old object stays",
        async () => {
          await store.put("checked.txt", encoder.encode("first"));
          await assert.rejects(
            store.put("checked.txt", encoder.encode("second"), {}, {
              md5: md5(encoder.encode("other")),
            }),
            (e) => e instanceof S3Error && e.status === 400 && e.code === "BadDigest",
          );
          assert.equal(await new Response(await store.get("checked.txt")).text(), "first");
          assert.deepEqual(await store.deleteMany(["checked.txt"]), []);
        },
      );

      await t.step("a write only where nothing is: 412 where something is", async () => {
        await store.put("lock", encoder.encode("1"), {}, { ifNoneMatch: true });
        await assert.rejects(
          store.put("lock", encoder.encode("2"), {}, { ifNoneMatch: true }),
          (e) => e instanceof S3Error && e.status === 412,
        );
        assert.equal(await new Response(await store.get("lock")).text(), "1");
      });

      await t.step("a folder of more than a page (1,000 keys) lists whole", async () => {
        const names = Array.from({ length: 1_100 }, (_, i) => `f${String(i).padStart(4, "0")}`);
        await Promise.all(names.map((name) => store.put(`many/${name}`, encoder.encode(name))));
        const many = await store.list("many");
        assert.deepEqual(many.objects.map((o) => o.name), names);
      });

      await t.step(
        "a delete names exactly its keys: spaces kept, control characters too",
        async () => {
          for (const name of ["x", "x ", " x", "tab\tx", "cr\rx", "ctl\u0001x"]) {
            await store.put(`ws/${name}`, encoder.encode(name));
          }
          assert.deepEqual(
            await store.deleteMany(["ws/x ", "ws/ x", "ws/cr\rx", "ws/ctl\u0001x"]),
            [],
          );
          const left = (await store.list("ws")).objects.map((o) => o.name).sort();
          assert.deepEqual(left, ["tab\tx", "x"]);
          assert.deepEqual(await store.deleteMany(["ws/x", "ws/tab\tx"]), []);
          assert.deepEqual((await store.list("ws")).objects, []);
        },
      );

      await t.step("deletes in batches of a thousand; gone already is fine", async () => {
        const all = [
          ...(await store.list("many")).objects.map((o) => `many/${o.name}`),
          odd,
          "dir/x.txt",
          "dir/sub/y.txt",
          "dir/",
          "lock",
          "was never there",
        ];
        assert.deepEqual(await store.deleteMany(all), []);
        const root = await store.list("");
        assert.deepEqual([root.objects, root.folders], [[], []]);
        assert.deepEqual((await other.list("")).objects.map((o) => o.name), ["elsewhere.txt"]);
      });

      await t.step(
        "a big file goes up in parts, streamed; a stopped upload leaves nothing",
        async () => {
          const file = await Deno.makeTempFile();
          const size = 23 * (1 << 20) + 12_345; // five parts of 5 MiB, the last one short
          const bytes = new Uint8Array(size);
          for (let at = 0; at < size; at += 65_536) {
            crypto.getRandomValues(bytes.subarray(at, Math.min(size, at + 65_536)));
          }
          await Deno.writeFile(file, bytes);
          try {
            const etag = await store.putFile("big.bin", file, size, { md5chksum: "x" }, {
              partSize: 5 << 20,
            });
            assert.match(etag, /^[0-9a-f]{32}-5$/); // a multipart ETag: MD5 of the parts' MD5s, -N
            const head = await store.head("big.bin");
            assert.equal(head?.size, size);
            assert.equal(head?.meta.md5chksum, "x");
            const got = new Uint8Array(
              await new Response(await store.get("big.bin")).arrayBuffer(),
            );
            assert.equal(md5(got), md5(bytes));
            // A small file is one PUT: its ETag is its MD5.
            assert.equal(
              await store.putFile("small.bin", file, 1000),
              md5(bytes.subarray(0, 1000)),
            );

            // Stopped part-way: aborted, no object, no upload left.
            const stop = new AbortController();
            const stopped = store.putFile("stopped.bin", file, size, {}, {
              partSize: 5 << 20,
              parts: 1,
              signal: stop.signal,
            });
            setTimeout(() => stop.abort(new Error("stopped")), 5);
            await assert.rejects(stopped);
            assert.equal(await store.head("stopped.bin"), undefined);
            assert.deepEqual(await store.uploads(), []);
          } finally {
            await Deno.remove(file);
          }
          assert.deepEqual(await store.deleteMany(["big.bin", "small.bin"]), []);
        },
      );

      await t.step(
        "kill -9 during a multipart upload: the upload left behind is found and aborted",
        async () => {
          const file = await Deno.makeTempFile();
          await Deno.writeFile(file, new Uint8Array(60 << 20));
          const script = await Deno.makeTempFile({ suffix: ".ts" });
          const lib = new URL("../../lib/backends/s3/store.ts", import.meta.url).href;
          await Deno.writeTextFile(
            script,
            `import { S3Store } from "${lib}";
const store = new S3Store(${JSON.stringify({ ...options, prefix: "backups/home", inFlight: 1 })});
await store.putFile("left.bin", ${JSON.stringify(file)}, ${60 << 20}, {}, { partSize: ${
              5 << 20
            }, parts: 1 });`,
          );
          const child = new Deno.Command(Deno.execPath(), {
            args: [
              "run",
              `--allow-net=${new URL(ceph.endpoint).host}`,
              `--allow-read=${file}`,
              script,
            ],
            stdout: "null",
            stderr: "null",
          }).spawn();
          try {
            const started = Date.now();
            while ((await store.uploads()).length === 0) {
              assert.ok(Date.now() - started < 30_000, "the upload started");
              await new Promise((resolve) => setTimeout(resolve, 20));
            }
          } finally {
            child.kill("SIGKILL");
            await child.status;
            await Deno.remove(file);
            await Deno.remove(script);
          }
          const left = await store.uploads();
          assert.deepEqual(left.map((u) => u.path), ["left.bin"]);
          assert.ok(Math.abs(left[0]!.initiated - Date.now()) < 60_000);
          assert.equal(await store.head("left.bin"), undefined); // never seen half-written
          for (const { path, uploadId } of left) await store.abortUpload(path, uploadId);
          assert.deepEqual(await store.uploads(), []);
        },
      );

      await t.step({
        name: "rclone (Debian's 1.60) reads the conventions: mtime, mode, .rclonelink",
        ignore: !succeeds("rclone", "version"), // apt-get install rclone
        fn: async () => {
          const interop = new S3Store({ ...options, prefix: "interop" });
          // mtime as float seconds, mode as octal, a symlink as NAME.rclonelink holding its target.
          await interop.put("a.txt", encoder.encode("hello"), {
            mtime: "1700000000.123456789",
            mode: "100640",
          });
          await interop.put("d/link.rclonelink", encoder.encode("../a.txt"), {
            mtime: "1700000002",
          });
          const remote =
            `:s3,provider=Ceph,endpoint='${ceph.endpoint}',access_key_id=${ceph.credentials.accessKeyId},secret_access_key=${ceph.credentials.secretAccessKey}:${options.bucket}/interop`;
          // AWS_CA_BUNDLE (set on these machines) breaks rclone on plain http.
          const rclone = (...args: string[]) =>
            new Deno.Command("rclone", {
              args: [...args, "--config", "/dev/null"],
              env: { AWS_CA_BUNDLE: "" },
              stdout: "piped",
              stderr: "piped",
            }).output();
          const listed = await rclone("lsjson", "-R", "--metadata", remote);
          assert.ok(listed.success, new TextDecoder().decode(listed.stderr));
          const items = JSON.parse(new TextDecoder().decode(listed.stdout)) as {
            Path: string;
            ModTime: string;
            Metadata?: Record<string, string>;
          }[];
          const file = items.find((item) => item.Path === "a.txt");
          assert.equal(file?.ModTime, "2023-11-14T22:13:20.123456789Z");
          assert.equal(file?.Metadata?.mode, "100640");
          const local = await Deno.makeTempDir();
          try {
            const copied = await rclone("copy", "--links", remote, local);
            assert.ok(copied.success, new TextDecoder().decode(copied.stderr));
            assert.equal(await Deno.readLink(`${local}/d/link`), "../a.txt");
            assert.equal(await Deno.readTextFile(`${local}/a.txt`), "hello");
            assert.equal((await Deno.stat(`${local}/a.txt`)).mtime?.getTime(), 1_700_000_000_123);
          } finally {
            await Deno.remove(local, { recursive: true });
          }
          assert.deepEqual(await interop.deleteMany(["a.txt", "d/link.rclonelink"]), []);
        },
      });

      await t.step("needs network access to the endpoint and nothing else", async () => {
        const script = await Deno.makeTempFile({ suffix: ".ts" });
        const lib = new URL("../../lib/backends/s3/store.ts", import.meta.url).href;
        await Deno.writeTextFile(
          script,
          `import { S3Store } from "${lib}";
const store = new S3Store(${JSON.stringify({ ...options, prefix: "perm" })});
await store.put("a.txt", new TextEncoder().encode("a"));
console.log((await store.list("")).objects.map((o) => o.name).join());
await store.deleteMany(["a.txt"]);`,
        );
        const host = new URL(ceph.endpoint).host;
        const output = await new Deno.Command(Deno.execPath(), {
          args: ["run", `--allow-net=${host}`, "--no-prompt", script],
          stdout: "piped",
          stderr: "piped",
        }).output();
        await Deno.remove(script);
        assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
        assert.equal(new TextDecoder().decode(output.stdout).trim(), "a.txt");
      });

      await t.step(
        "the gateway goes away: requests fail after retries; back: they work",
        async () => {
          const quick = new S3Store({ ...options, prefix: "q", retries: 2 });
          await quick.put("a", encoder.encode("a"));
          await ceph.stopGateway();
          const started = Date.now();
          await assert.rejects(quick.list(""), S3Unreachable);
          assert.ok(Date.now() - started >= 200, "retried with backoff"); // 100 + 200 ms at least
          await ceph.startGateway();
          assert.deepEqual((await quick.list("")).objects.map((o) => o.name), ["a"]);
        },
      );
    }
  },
});

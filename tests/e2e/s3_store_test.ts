/**
 * The S3 transport (`lib/s3.ts`) against a real Ceph cluster's `radosgw` on
 * 127.0.0.1: listing folders (pages, markers, any name), writing with
 * metadata, conditional writes, reading, deleting in batches, and a gateway
 * that goes away and comes back.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { S3Error, S3Store, S3Unreachable } from "../../lib/s3.ts";
import { cephMissing, startCeph } from "../ceph.ts";

const missing = cephMissing();
if (missing !== undefined) console.warn(`s3 store tests skipped: ${missing}`);
const encoder = new TextEncoder();
const md5 = (bytes: Uint8Array) => createHash("md5").update(bytes).digest("hex");

Deno.test({
  name: "s3 store: on a real Ceph cluster",
  ignore: missing !== undefined, // the reason: cephMissing()
  fn: async (t) => {
    const ceph = await startCeph();
    try {
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

      await t.step("needs network access to the endpoint and nothing else", async () => {
        const script = await Deno.makeTempFile({ suffix: ".ts" });
        const lib = new URL("../../lib/s3.ts", import.meta.url).href;
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
    } finally {
      await ceph.stop();
    }
  },
});

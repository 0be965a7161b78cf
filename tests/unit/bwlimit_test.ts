/**
 * `--bwlimit` in the writers: each takes the bytes of file content from the
 * run's rate before it writes them (a rate here that records the takes), and
 * a stop ends a write that waits for its bytes. The SSH replica's pacing is
 * tested end to end (`tests/e2e/sftp_mirror_test.ts`), the whole program's
 * in `tests/e2e/cli_test.ts`.
 */
import assert from "node:assert/strict";
import { LocalReplica, LocalTree } from "../../lib/backends/local/local.ts";
import { S3Replica } from "../../lib/backends/s3/replica.ts";
import { S3Store } from "../../lib/backends/s3/store.ts";
import { statKey } from "../../lib/core/entry.ts";
import type { Rate } from "../../lib/core/rate.ts";
import type { FileWrite } from "../../lib/core/replica.ts";
import { withWork } from "../helpers.ts";

/** A rate that grants at once and records each take, with what `sent()` said then. */
function recordingRate(chunk: number, sent: () => number = () => 0) {
  const takes: { bytes: number; sentBefore: number }[] = [];
  const rate: Rate = {
    chunk,
    take: (bytes) => {
      takes.push({ bytes, sentBefore: sent() });
      return Promise.resolve();
    },
  };
  return { rate, takes, taken: () => takes.reduce((sum, take) => sum + take.bytes, 0) };
}

/** A file of `size` random bytes in `work/src`, as a write to `name`. */
async function sourceFile(work: string, name: string, size: number): Promise<FileWrite> {
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) {
    crypto.getRandomValues(bytes.subarray(at, at + 65536));
  }
  await Deno.writeFile(`${work}/src/${name}`, bytes);
  const entry = (await new LocalTree(`${work}/src`).stat(name))!;
  return {
    path: name,
    from: `${work}/src/${name}`,
    size,
    mtimeMs: entry.mtimeMs,
    mode: entry.mode,
    expectedKey: statKey(entry),
  };
}

Deno.test("bwlimit: a local replica takes every byte it copies, small, big and in batches", async () => {
  await withWork(async (work) => {
    const { rate, takes, taken } = recordingRate(16 << 10);
    const replica = new LocalReplica(`${work}/rep`, { rate });
    replica.makeRoot();
    const small = await sourceFile(work, "small", 1000);
    const big = await sourceFile(work, "big", (1 << 20) + 7);
    assert.equal((await replica.writeFile(small)).status, "done");
    assert.equal(taken(), 1000);
    assert.equal((await replica.writeFile(big)).status, "done");
    assert.equal(taken(), 1000 + big.size);
    assert.ok(takes.every((take) => take.bytes <= 16 << 10), "a piece at a time");
    const batch = await Promise.all(
      Array.from({ length: 70 }, (_, i) => sourceFile(work, `b${i}`, 100 + i)),
    );
    const results = await replica.writeFiles(batch);
    assert.ok(results.every((result) => result.status === "done"));
    assert.equal(taken(), 1000 + big.size + batch.reduce((sum, write) => sum + write.size, 0));
    for (const name of ["small", "big", "b69"]) {
      assert.deepEqual(
        await Deno.readFile(`${work}/rep/${name}`),
        await Deno.readFile(`${work}/src/${name}`),
      );
    }
    // The permission bits, as the kernel's copy keeps them.
    const modal = await sourceFile(work, "modal", 3 << 20);
    await Deno.chmod(`${work}/src/modal`, 0o640);
    const entry = (await new LocalTree(`${work}/src`).stat("modal"))!;
    const written = await replica.writeFile({ ...modal, mode: 0o640, expectedKey: statKey(entry) });
    assert.equal(written.status, "done");
    assert.equal(Deno.statSync(`${work}/rep/modal`).mode! & 0o7777, 0o640);
    replica.close();
  });
});

Deno.test("bwlimit: a stop ends a local copy that waits for its bytes, its temp file removed", async () => {
  await withWork(async (work) => {
    // A rate that never grants: only the stop ends the wait.
    const rate: Rate = {
      chunk: 16 << 10,
      take: (_bytes, signal) =>
        new Promise((_, reject) => signal?.addEventListener("abort", () => reject(signal.reason))),
    };
    const replica = new LocalReplica(`${work}/rep`, { rate });
    replica.makeRoot();
    const stop = new AbortController();
    const writing = replica.writeFile(await sourceFile(work, "big", 2 << 20), stop.signal);
    await new Promise((resolve) => setTimeout(resolve, 50));
    stop.abort();
    assert.equal((await writing).status, "skipped");
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual([...Deno.readDirSync(`${work}/rep`)], []);
    replica.close();
  });
});

Deno.test("bwlimit: a bucket replica takes every byte before it is sent, streamed a piece at a time", async () => {
  await withWork(async (work) => {
    let received = 0;
    const objects = new Map<string, number>();
    // Enough of S3 for a PUT: the body read as it comes, an ETag back.
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (request) => {
        let size = 0;
        for await (const chunk of request.body ?? []) {
          size += chunk.length;
          received += chunk.length;
        }
        objects.set(new URL(request.url).pathname, size);
        return new Response(null, { headers: { etag: `"${crypto.randomUUID()}"` } });
      },
    );
    try {
      const store = new S3Store({
        endpoint: `http://127.0.0.1:${server.addr.port}`,
        region: "us-east-1",
        bucket: "b",
        prefix: "",
        credentials: { accessKeyId: "AK", secretAccessKey: "SK" },
      });
      const { rate, takes, taken } = recordingRate(16 << 10, () => received);
      const replica = new S3Replica({ store, where: "s3://b", id: "b", prefixed: false, rate });
      const small = await sourceFile(work, "small", 1000);
      assert.equal((await replica.writeFile(small)).status, "done");
      assert.equal(taken(), 1000);
      // Bigger than a piece: streamed from disk, each piece taken before it went.
      const medium = await sourceFile(work, "medium", 300_000);
      assert.equal((await replica.writeFile(medium)).status, "done");
      assert.equal(objects.get("/b/medium"), 300_000);
      assert.equal(taken(), 301_000);
      let before = 0;
      for (const take of takes) {
        assert.ok(take.sentBefore <= before, "no byte went before it was taken");
        assert.ok(take.bytes <= 16 << 10, "a piece at a time");
        before += take.bytes;
      }
    } finally {
      await server.shutdown();
    }
  });
});

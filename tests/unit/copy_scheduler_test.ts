import assert from "node:assert/strict";
import { CopyScheduler } from "../../lib/engine/copy_scheduler.ts";
import { statKey } from "../../lib/core/entry.ts";
import { LocalReplica, LocalTree } from "../../lib/backends/local/local.ts";
import type { FileWrite, WriteResult } from "../../lib/core/replica.ts";
import { withWork } from "../helpers.ts";

/** Writes of every file in `work/src`, as the applier makes them. */
async function writesOf(work: string): Promise<FileWrite[]> {
  const listing = await new LocalTree(`${work}/src`).list("");
  return listing.entries.map(({ name, entry }) => ({
    path: name,
    from: `${work}/src/${name}`,
    size: entry.size,
    mtimeMs: entry.mtimeMs,
    mode: entry.mode,
    expectedKey: statKey(entry),
  }));
}

Deno.test("copy scheduler: a batch the replica cannot take at all is written file by file", async () => {
  await withWork(async (work) => {
    for (let i = 0; i < 300; i++) Deno.writeTextFileSync(`${work}/src/f${i}`, `${i}`);
    let batches = 0;
    const replica = new (class extends LocalReplica {
      override writeFiles(): Promise<WriteResult[]> {
        batches++;
        return Promise.reject(new Error("connection reset"));
      }
    })(`${work}/rep`);
    await replica.makeRoot();
    const scheduler = new CopyScheduler(replica, { batches: true });
    const results: string[] = [];
    for (const write of await writesOf(work)) {
      await scheduler.submit(write, undefined, (result) => results.push(result.status));
    }
    await scheduler.drain();
    assert.ok(batches > 0, "batches were tried");
    assert.equal(results.length, 300);
    assert.ok(results.every((status) => status === "done"), results.join());
    assert.equal(Deno.readTextFileSync(`${work}/rep/f299`), "299");
  });
});

Deno.test("copy scheduler: a write that throws ends as failed, retried once alone", async () => {
  await withWork(async (work) => {
    Deno.writeFileSync(`${work}/src/big`, new Uint8Array(2 << 20));
    let calls = 0;
    const replica = new (class extends LocalReplica {
      override writeFile(): Promise<WriteResult> {
        calls++;
        return Promise.reject(new Deno.errors.ConnectionReset("gone"));
      }
    })(`${work}/rep`);
    await replica.makeRoot();
    const scheduler = new CopyScheduler(replica);
    const results: WriteResult[] = [];
    for (const write of await writesOf(work)) {
      await scheduler.submit(write, undefined, (result) => results.push(result));
    }
    await scheduler.drain();
    assert.equal(results.length, 0, "a failure waits for its retry");
    await scheduler.retryFailed(undefined);
    assert.equal(calls, 2);
    assert.equal(results[0]?.status, "failed");
    assert.equal(results[0]?.status === "failed" && results[0].name, "ConnectionReset");
  });
});

Deno.test("copy scheduler: a replica with requests in flight gets the next batch while one is sent", async () => {
  await withWork(async (work) => {
    for (let i = 0; i < 600; i++) Deno.writeTextFileSync(`${work}/src/f${i}`, `${i}`);
    let inFlight = 0, most = 0;
    const replica = new (class extends LocalReplica {
      readonly batched = true;
      override async writeFiles(writes: readonly FileWrite[]): Promise<WriteResult[]> {
        most = Math.max(most, ++inFlight);
        await new Promise((resolve) => setTimeout(resolve, 20));
        try {
          return await super.writeFiles(writes);
        } finally {
          inFlight--;
        }
      }
    })(`${work}/rep`);
    await replica.makeRoot();
    const scheduler = new CopyScheduler(replica, { batches: true });
    const results: string[] = [];
    for (const write of await writesOf(work)) {
      await scheduler.submit(write, undefined, (result) => results.push(result.status));
    }
    await scheduler.drain();
    assert.equal(most, 2, "two batches at once, never more");
    assert.equal(results.length, 600);
    assert.ok(results.every((status) => status === "done"), results.join());
    assert.equal(Deno.readTextFileSync(`${work}/rep/f599`), "599");
  });
});

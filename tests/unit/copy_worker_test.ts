import assert from "node:assert/strict";
import type { CopyJob } from "../../lib/backends/local/copy.ts";
import { CopyWorker } from "../../lib/backends/local/copy_worker.ts";
import { statKey } from "../../lib/core/entry.ts";
import { LocalTree } from "../../lib/backends/local/local.ts";
import { withWork } from "../helpers.ts";

async function jobsOf(work: string, names: string[]): Promise<CopyJob[]> {
  const tree = new LocalTree(`${work}/src`);
  return await Promise.all(names.map(async (name) => {
    const entry = (await tree.stat(name))!;
    return {
      from: `${work}/src/${name}`,
      dest: `${work}/rep/${name}`,
      size: entry.size,
      mtimeMs: entry.mtimeMs,
      mode: entry.mode,
      expectedKey: statKey(entry),
    };
  }));
}

Deno.test("copy worker: two batches sent at once are both answered, each with its own results", async () => {
  await withWork(async (work) => {
    Deno.mkdirSync(`${work}/rep`);
    for (const name of ["a", "b", "c"]) Deno.writeTextFileSync(`${work}/src/${name}`, name);
    const worker = new CopyWorker();
    try {
      const [first, second] = await Promise.all([
        worker.copy(await jobsOf(work, ["a", "b"])),
        worker.copy(await jobsOf(work, ["c"])),
      ]);
      assert.deepEqual(first?.map((r) => r.status), ["done", "done"]);
      assert.deepEqual(second?.map((r) => r.status), ["done"]);
      assert.equal(Deno.readTextFileSync(`${work}/rep/c`), "c");
    } finally {
      worker.close();
    }
  });
});

Deno.test("copy worker: closing it rejects a batch not answered yet, and later ones", async () => {
  await withWork(async (work) => {
    Deno.mkdirSync(`${work}/rep`);
    Deno.writeTextFileSync(`${work}/src/a`, "a");
    const worker = new CopyWorker();
    const pending = worker.copy(await jobsOf(work, ["a"]));
    worker.close();
    await assert.rejects(pending, /closed/);
    await assert.rejects(worker.copy(await jobsOf(work, ["a"])), /closed/);
  });
});

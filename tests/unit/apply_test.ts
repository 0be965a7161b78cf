import assert from "node:assert/strict";
import { CopyWorker } from "../../lib/backends/local/copy_worker.ts";
import { applyPlan, type Outcome } from "../../lib/engine/apply.ts";
import { MIN_BATCHED_WRITES } from "../../lib/engine/copy_scheduler.ts";
import { type Disk, realDisk } from "../../lib/backends/local/disk.ts";
import { LocalReplica, LocalTree } from "../../lib/backends/local/local.ts";
import { plan } from "../../lib/engine/plan.ts";
import { scanTree } from "../../lib/engine/scan.ts";
import { assertMirrored, listTree, withWork } from "../helpers.ts";

/** The replica `work/rep` as a local folder written through `disk`. */
function localReplica(work: string, disk: Disk = realDisk): LocalReplica {
  return new LocalReplica(`${work}/rep`, { disk, worker: false });
}

/** A disk whose `copyFile` fails for paths copied from `failing`. */
function faultyDisk(failing: string, error: Error): Disk {
  return {
    ...realDisk,
    copyFile: (from, to, size) => {
      if (from.endsWith(failing)) {
        Deno.writeTextFileSync(to, "partial"); // a half-written temp file
        throw error;
      }
      return realDisk.copyFile(from, to, size);
    },
  };
}

for (
  const [name, error] of [
    ["EACCES", new Deno.errors.PermissionDenied("Permission denied (os error 13)")],
    ["ENOSPC", new Error("No space left on device (os error 28)")],
  ] as const
) {
  Deno.test(`apply: ${name} on one file fails that file only and leaves no temp file`, async () => {
    await withWork(async (work) => {
      for (const name of ["a", "b", "c"]) Deno.writeTextFileSync(`${work}/src/${name}`, name);
      Deno.mkdirSync(`${work}/rep`);
      const actions = plan((await scanTree(new LocalTree(`${work}/src`))).tree, new Map(), {
        changed: new Set(),
      });
      const outcomes: Outcome[] = await applyPlan(
        actions,
        localReplica(work, faultyDisk("/b", error)),
        {
          sourceRoot: `${work}/src`,
        },
      );
      assert.deepEqual(outcomes.map((o) => [o.action.path, o.status]).sort(), [
        ["a", "done"],
        ["b", "failed"],
        ["c", "done"],
      ]);
      assert.deepEqual([...listTree(`${work}/rep`).keys()].sort(), ["a", "c"]);
    });
  });
}

Deno.test("apply: a source file that vanishes before its copy is skipped, not failed", async () => {
  await withWork(async (work) => {
    Deno.writeTextFileSync(`${work}/src/gone`, "x");
    Deno.mkdirSync(`${work}/rep`);
    const actions = plan((await scanTree(new LocalTree(`${work}/src`))).tree, new Map(), {
      changed: new Set(),
    });
    Deno.removeSync(`${work}/src/gone`);
    const [outcome] = await applyPlan(actions, localReplica(work, realDisk), {
      sourceRoot: `${work}/src`,
    });
    assert.equal(outcome?.status, "skipped");
    assert.deepEqual([...listTree(`${work}/rep`).keys()], []);
  });
});

Deno.test("apply: a source file changed during its copy is discarded", async () => {
  await withWork(async (work) => {
    Deno.writeTextFileSync(`${work}/src/busy`, "before");
    Deno.mkdirSync(`${work}/rep`);
    const actions = plan((await scanTree(new LocalTree(`${work}/src`))).tree, new Map(), {
      changed: new Set(),
    });
    const disk: Disk = {
      ...realDisk,
      copyFile: (from, to, size) => {
        realDisk.copyFile(from, to, size);
        Deno.writeTextFileSync(from, "after, longer"); // a writer got in
      },
    };
    const [outcome] = await applyPlan(actions, localReplica(work, disk), {
      sourceRoot: `${work}/src`,
    });
    assert.equal(outcome?.status, "skipped");
    assert.deepEqual([...listTree(`${work}/rep`).keys()], []);
  });
});

Deno.test("apply: nothing is attempted under a folder that could not be created", async () => {
  await withWork(async (work) => {
    Deno.mkdirSync(`${work}/src/d/e`, { recursive: true });
    Deno.writeTextFileSync(`${work}/src/d/e/f`, "x");
    Deno.mkdirSync(`${work}/rep`);
    const actions = plan((await scanTree(new LocalTree(`${work}/src`))).tree, new Map(), {
      changed: new Set(),
    });
    const disk: Disk = {
      ...realDisk,
      mkdir: () => {
        throw new Deno.errors.PermissionDenied("denied");
      },
    };
    const outcomes = await applyPlan(actions, localReplica(work, disk), {
      sourceRoot: `${work}/src`,
    });
    assert.deepEqual(outcomes.map((o) => [o.action.path, o.status]), [["d", "failed"]]);
  });
});

Deno.test("apply: nothing is written through a replica folder that became a symlink", async () => {
  await withWork(async (work) => {
    Deno.mkdirSync(`${work}/src/d`);
    Deno.writeTextFileSync(`${work}/src/d/x`, "source");
    Deno.mkdirSync(`${work}/src/e`);
    Deno.mkdirSync(`${work}/outside`);
    Deno.mkdirSync(`${work}/rep`);
    Deno.mkdirSync(`${work}/rep/e`);
    // The plan was made while rep/d was a real folder; then it was swapped for a link.
    const actions = plan(
      (await scanTree(new LocalTree(`${work}/src`))).tree,
      (await scanTree(new LocalTree(`${work}/src`))).tree,
      {
        changed: new Set(["d/x"]),
      },
    );
    Deno.symlinkSync(`${work}/outside`, `${work}/rep/d`);
    Deno.removeSync(`${work}/rep/e`);
    Deno.symlinkSync(`${work}/outside`, `${work}/rep/e`);
    Deno.chmodSync(`${work}/outside`, 0o700);
    const outcomes = await applyPlan(
      [...actions, { op: "folder", path: "e", mode: 0o755, mtimeMs: 0, quiet: false }],
      localReplica(work, realDisk),
      { sourceRoot: `${work}/src` },
    );
    assert.deepEqual(outcomes.map((o) => [o.action.path, o.status]), [
      ["d/x", "failed"],
      ["d", "failed"], // its attributes, after the write into it
      ["e", "failed"],
    ]);
    assert.match(
      String((outcomes[0] as { error: Error }).error),
      /replica folder 'd' is a symlink/,
    );
    assert.match(String((outcomes[1] as { error: Error }).error), /entry is a symlink/);
    assert.deepEqual([...Deno.readDirSync(`${work}/outside`)], []);
    assert.equal(Deno.statSync(`${work}/outside`).mode! & 0o777, 0o700);
  });
});

Deno.test("apply: a copy that failed beside another is retried alone", async () => {
  await withWork(async (work) => {
    Deno.writeFileSync(`${work}/src/big`, new Uint8Array(2 << 20));
    for (const name of ["a", "c"]) Deno.writeTextFileSync(`${work}/src/${name}`, name);
    Deno.mkdirSync(`${work}/rep`);
    let bigInFlight = false;
    const disk: Disk = {
      ...realDisk,
      copyFile: (from, to, size) => {
        if (size >= 1 << 20) {
          bigInFlight = true;
          return Deno.copyFile(from, to).finally(() => (bigInFlight = false));
        }
        if (bigInFlight) throw new Error("No space left on device (os error 28)");
        return realDisk.copyFile(from, to, size);
      },
    };
    const actions = plan((await scanTree(new LocalTree(`${work}/src`))).tree, new Map(), {
      changed: new Set(),
    });
    const outcomes = await applyPlan(actions, localReplica(work, disk), {
      sourceRoot: `${work}/src`,
    });
    assert.deepEqual(outcomes.map((o) => [o.action.path, o.status]).sort(), [
      ["a", "done"],
      ["big", "done"],
      ["c", "done"],
    ]);
    assertMirrored(`${work}/src`, `${work}/rep`);
  });
});

Deno.test("apply: the copy worker mirrors many small files like the main thread does", async () => {
  await withWork(async (work) => {
    for (let d = 0; d < 3; d++) {
      Deno.mkdirSync(`${work}/src/d${d}`);
      for (let f = 0; f < 300; f++) Deno.writeTextFileSync(`${work}/src/d${d}/f${f}`, `${d}:${f}`);
    }
    for (let f = 0; f < 300; f++) Deno.writeTextFileSync(`${work}/src/top${f}`, `top ${f}`);
    Deno.mkdirSync(`${work}/rep`);
    const actions = plan((await scanTree(new LocalTree(`${work}/src`))).tree, new Map(), {
      changed: new Set(),
    });
    assert.ok(actions.filter((action) => action.op === "copy").length >= MIN_BATCHED_WRITES);
    const failures: Error[] = [];
    let copiedThere = 0;
    const replica = new LocalReplica(`${work}/rep`, {
      onWorkerFailure: (error) => failures.push(error),
      makeWorker: () => {
        const worker = new CopyWorker();
        return {
          copy: (jobs) => (copiedThere += jobs.length, worker.copy(jobs)),
          close: () => worker.close(),
        };
      },
    });
    const outcomes = await applyPlan(actions, replica, {
      sourceRoot: `${work}/src`,
      batches: true,
    });
    replica.close();
    assert.deepEqual(failures, []);
    assert.ok(copiedThere >= actions.length / 3, `the worker copied ${copiedThere} files`);
    assert.equal(outcomes.filter((o) => o.status === "done").length, actions.length);
    assertMirrored(`${work}/src`, `${work}/rep`);
  });
});

Deno.test("apply: a touch vouches for the replica's new key only if it is the file compared", async () => {
  await withWork(async (work) => {
    Deno.writeTextFileSync(`${work}/src/f`, "same");
    Deno.mkdirSync(`${work}/rep`);
    Deno.writeTextFileSync(`${work}/rep/f`, "same");
    Deno.utimeSync(`${work}/rep/f`, 0, 0); // attributes differ, content the same
    const roots = { source: `${work}/src`, replica: `${work}/rep` };
    const touchOf = async () => {
      const actions = plan(
        (await scanTree(new LocalTree(roots.source))).tree,
        (await scanTree(new LocalTree(roots.replica))).tree,
        {
          changed: new Set(),
        },
      );
      assert.deepEqual(actions.map((a) => a.op), ["touch"]);
      return actions;
    };
    const [untouched] = await applyPlan(await touchOf(), localReplica(work), {
      sourceRoot: roots.source,
    });
    assert.ok(untouched?.status === "done" && untouched.replicaKey !== undefined);
    Deno.utimeSync(`${work}/rep/f`, 0, 0);
    const actions = await touchOf();
    Deno.writeTextFileSync(`${work}/rep/f`, "SAME"); // someone else, after the comparison
    const [raced] = await applyPlan(actions, localReplica(work), { sourceRoot: roots.source });
    assert.ok(raced?.status === "done" && raced.replicaKey === undefined);
  });
});

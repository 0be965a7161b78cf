/**
 * The local backend's session: what a run's replica is made with.
 */
import assert from "node:assert/strict";
import { getLogger } from "npm:@logtape/logtape@^2.4.2";
import { localBackend } from "../../lib/backends/local/backend.ts";
import { LocalReplica, LocalTree } from "../../lib/backends/local/local.ts";
import { Mirror } from "../../lib/engine/mirror.ts";
import { MirrorState } from "../../lib/state/state.ts";
import { withWork } from "../helpers.ts";

Deno.test("local backend: a running mirror's read-ahead thread waits for the next cycle (starting it again costs more than an idle cycle)", async () => {
  await withWork(async (work) => {
    const source = `${work}/source`, replica = `${work}/replica`;
    for (let i = 0; i < 40; i++) { // a tree worth reading ahead (32 folders and more)
      Deno.mkdirSync(`${source}/d${i}/e`, { recursive: true });
      Deno.writeTextFileSync(`${source}/d${i}/e/f.txt`, `${i}`);
    }
    const session = await localBackend.open(replica, {}, {
      dryRun: false,
      verify: false,
      intervalSeconds: 1,
      stateFile: `${work}/state`,
    });
    const state = MirrorState.inMemory({ source, replica });
    const tree = session.replica(state, getLogger(["test"]));
    assert.ok(tree instanceof LocalReplica);
    try {
      const mirror = new Mirror(new LocalTree(source), tree, { state });
      await mirror.cycle(); // makes the replica
      await mirror.cycle();
      assert.ok(tree.readingAhead, "the cycle read the replica ahead");
      // Past the second a thread is kept by default, within the interval and a margin.
      await new Promise((resolve) => setTimeout(resolve, 1300));
      assert.ok(tree.readingAhead, "stopped before the next cycle was due");
      await mirror.cycle();
      await new Promise((resolve) => setTimeout(resolve, 3500));
      assert.ok(!tree.readingAhead, "kept although no cycle came");
    } finally {
      tree.close?.();
      await session.close();
    }
  });
});

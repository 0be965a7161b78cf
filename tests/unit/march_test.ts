/**
 * The folder-by-folder march against the whole-tree planner (the model): the
 * same actions, and the replica equal to the source once they are applied.
 */
import fc from "npm:fast-check@^4.11.0";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { Entry } from "../../lib/core/entry.ts";
import type { ExcludeMatcher } from "../../lib/core/exclude.ts";
import { March } from "../../lib/engine/march.ts";
import { PairIndex } from "../../lib/state/pair_index.ts";
import { compareNames, comparePaths, parentOf } from "../../lib/core/paths.ts";
import { type Action, plan } from "../../lib/engine/plan.ts";
import type { Listing, TreeReader } from "../../lib/core/replica.ts";
import { applyToModel, changedBetween, entry, visible, type World, worldArb } from "./model.ts";

const ROOT = entry("dir", 0, 0o755, 1_000, 0);
const ROOTS = { source: ROOT, replica: ROOT };

/** A tree of the model, read as a `TreeReader`; folders in `unreadable` cannot be listed. */
function reader(world: World, unreadable: ReadonlySet<string> = new Set()): TreeReader {
  return {
    where: "model",
    open: () => ({ entry: ROOT, id: "model" }),
    list(dir: string): Listing {
      if (unreadable.has(dir)) throw new Deno.errors.PermissionDenied(`cannot list ${dir}`);
      const entries = [...world.tree].filter(([path]) => path !== "" && parentOf(path) === dir)
        .map(([path, entry]) => ({ name: path.slice(dir === "" ? 0 : dir.length + 1), entry }))
        .sort((a, b) => compareNames(a.name, b.name));
      return { entries, problems: [] };
    },
    stat: (path: string) => world.tree.get(path),
    md5: (path: string) =>
      Promise.resolve(createHash("md5").update(world.content.get(path) ?? "").digest("hex")),
  };
}

/**
 * A whole cycle's actions, in the order a Mirror applies them: the walk's
 * writes, then the removals and keeps, the type changes, and the folder
 * attributes deepest first.
 */
async function marchActions(
  source: World,
  replica: World,
  options: {
    exclude?: ExcludeMatcher;
    unreadable?: ReadonlySet<string>;
    replicaUnreadable?: ReadonlySet<string>;
  } = {},
): Promise<Action[]> {
  const actions: Action[] = [];
  const march = new March({
    trees: {
      source: reader(source, options.unreadable),
      replica: reader(replica, options.replicaUnreadable),
    },
    roots: { source: ROOT, replica: ROOT },
    exclude: options.exclude,
    isTemp: () => false,
    index: new PairIndex(),
    owners: undefined,
    observedAt: Date.now(),
    countDeletes: true,
    apply: (action) => (actions.push(action), Promise.resolve()),
    onProblem: () => {},
    onSpecial: () => {},
  });
  const result = await march.run(true);
  actions.push(...result.removals, ...result.keeps);
  const attributes = [...result.attributes, ...await march.afterRemovals(result.blocked)];
  attributes.sort((a, b) => comparePaths(b.path, a.path));
  return [...actions, ...attributes];
}

const key = (action: Action) => JSON.stringify(action);

Deno.test("march: the same actions as the whole-tree plan; applied, the replica is the source", async () => {
  await fc.assert(
    fc.asyncProperty(worldArb(), worldArb(), async (source, replica) => {
      const actions = await marchActions(source, replica);
      const model = plan(source.tree, replica.tree, {
        changed: changedBetween(source, replica),
        roots: ROOTS,
      });
      assert.deepEqual(actions.map(key).sort(), model.map(key).sort());
      assert.deepEqual(visible(applyToModel(actions, source, replica)), visible(source));
    }),
    { numRuns: 400 },
  );
});

Deno.test("march: excluded entries are in neither tree; a replica folder holding some is kept", async () => {
  // Every entry named "c" is excluded (and everything below an excluded folder).
  const excluded = (path: string) => path.split("/").includes("c");
  const without = (world: World): World => ({
    tree: new Map([...world.tree].filter(([path]) => !excluded(path))),
    content: world.content,
  });
  await fc.assert(
    fc.asyncProperty(worldArb(), worldArb(), async (source, replica) => {
      const actions = await marchActions(source, replica, { exclude: (path) => excluded(path) });
      const holdsExcluded = new Set<string>();
      for (const path of replica.tree.keys()) {
        if (!excluded(path)) continue;
        for (let at = parentOf(path); at !== ""; at = parentOf(at)) holdsExcluded.add(at);
      }
      const model = plan(without(source).tree, without(replica).tree, {
        changed: changedBetween(without(source), without(replica)),
        holdsExcluded,
        roots: ROOTS,
      });
      assert.deepEqual(actions.map(key).sort(), model.map(key).sort());
    }),
    { numRuns: 300 },
  );
});

Deno.test("march: a replica folder the survey cannot list is not removed, nor any folder above it", async () => {
  const file = (size: number) => entry("file", size, 0o644, 2_000, 0);
  const dir = () => entry("dir", 0, 0o755, 2_000, 0);
  const replica: World = {
    tree: new Map([
      ["", ROOT],
      ["old", dir()],
      ["old/a", file(1)],
      ["old/sub", dir()],
      ["old/sub/b", file(2)],
    ]),
    content: new Map([["old/a", "a"], ["old/sub/b", "bb"]]),
  };
  const source: World = { tree: new Map([["", ROOT]]), content: new Map() };
  // An exclude pattern (matching nothing) makes the march survey what it would remove.
  const actions = await marchActions(source, replica, {
    exclude: () => false,
    replicaUnreadable: new Set(["old/sub"]),
  });
  const removed = actions.filter((action) => action.op === "remove").map((a) => a.path);
  // What is known to be extra goes; what could not be listed, and the folders above it, stay.
  assert.deepEqual(removed, ["old/a"]);
  assert.ok(actions.some((action) => action.op === "keep" && action.path === "old"));
});

Deno.test("march: nothing under a source folder that cannot be listed is removed", async () => {
  await fc.assert(
    fc.asyncProperty(worldArb(), worldArb(), async (source, replica) => {
      const dirs = [...source.tree].filter(([, e]: [string, Entry]) => e.kind === "dir")
        .map(([path]) => path);
      const unreadable = new Set(dirs.slice(0, 2));
      const actions = await marchActions(source, replica, { unreadable });
      // The model: those folders listed as empty, and incomplete.
      const seen: World = {
        tree: new Map(
          [...source.tree].filter(([path]) =>
            ![...unreadable].some((dir) => path.startsWith(`${dir}/`))
          ),
        ),
        content: source.content,
      };
      const model = plan(seen.tree, replica.tree, {
        changed: changedBetween(seen, replica),
        incomplete: unreadable,
        roots: ROOTS,
      });
      assert.deepEqual(actions.map(key).sort(), model.map(key).sort());
    }),
    { numRuns: 300 },
  );
});

Deno.test("march: the replica is read ahead on a second thread unless the state knows the tree to be small", async () => {
  const world: World = { tree: new Map([["", ROOT]]), content: new Map() };
  const readsAhead = async (folders: number) => {
    const index = new PairIndex();
    for (let i = 0; i < folders; i++) index.visit(`d${i}`, [], 100 + i);
    let asked = false;
    const replica = { ...reader(world), readAhead: () => void (asked = true) };
    await new March({
      trees: { source: reader(world), replica },
      roots: ROOTS,
      exclude: undefined,
      isTemp: () => false,
      index,
      owners: undefined,
      observedAt: Date.now(),
      countDeletes: false,
      apply: () => Promise.resolve(),
      onProblem: () => {},
      onSpecial: () => {},
    }).run(true);
    return asked;
  };
  assert.equal(await readsAhead(0), true, "nothing known: read ahead");
  assert.equal(await readsAhead(3), false, "a small tree: the thread's start costs more");
  assert.equal(await readsAhead(40), true);
});

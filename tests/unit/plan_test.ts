import fc from "npm:fast-check@^4.11.0";
import assert from "node:assert/strict";
import type { Entry, Tree } from "../../lib/core/entry.ts";
import { plan, planFolder } from "../../lib/engine/plan.ts";
import { parentOf } from "../../lib/core/paths.ts";
import { applyToModel, changedBetween, entry, visible, worldArb } from "./model.ts";

Deno.test("plan: applying the plan to the replica yields the source", () => {
  fc.assert(
    fc.property(worldArb(), worldArb(), (source, replica) => {
      const actions = plan(source.tree, replica.tree, { changed: changedBetween(source, replica) });
      const result = applyToModel(actions, source, replica);
      assert.deepEqual(visible(result), visible(source));
    }),
    { numRuns: 500 },
  );
});

Deno.test("plan: planning again after applying yields nothing", () => {
  fc.assert(
    fc.property(worldArb(), worldArb(), (source, replica) => {
      const actions = plan(source.tree, replica.tree, { changed: changedBetween(source, replica) });
      const result = applyToModel(actions, source, replica);
      assert.deepEqual(
        plan(source.tree, result.tree, { changed: changedBetween(source, result) }),
        [],
      );
    }),
    { numRuns: 300 },
  );
});

Deno.test("plan: an equal replica needs no action", () => {
  fc.assert(
    fc.property(worldArb(), (world) => {
      assert.deepEqual(plan(world.tree, world.tree, { changed: new Set() }), []);
    }),
  );
});

Deno.test("plan: nothing under an incompletely read source folder is removed", () => {
  fc.assert(
    fc.property(worldArb(), worldArb(), (source, replica) => {
      const dirs = [...source.tree].filter(([, e]) => e.kind === "dir").map(([p]) => p);
      const incomplete = new Set(["", ...dirs].slice(0, 2));
      const actions = plan(source.tree, replica.tree, { changed: new Set(), incomplete });
      for (const action of actions) {
        if (action.op !== "remove") continue;
        // Only type changes of entries the source does list may remove anything.
        assert.ok(
          source.tree.has(action.path),
          `removed ${action.path} despite incomplete listing`,
        );
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("plan: a type change is a removal followed by a creation", () => {
  const file: Entry = entry("file", 1, 0o644, 1_000, 1);
  const dir: Entry = entry("dir", 0, 0o755, 1_000, 2);
  const link: Entry = { ...entry("symlink", 0, 0o777, 1_000, 3), target: "t" };
  const cases: [Entry, Entry, string][] = [
    [file, dir, "mkdir"],
    [dir, file, "copy"],
    [file, link, "symlink"],
    [link, file, "copy"],
    [dir, link, "symlink"],
    [link, dir, "mkdir"],
  ];
  for (const [before, after, create] of cases) {
    const actions = plan(new Map([["p", after]]) as Tree, new Map([["p", before]]), {
      changed: new Set(),
    });
    assert.deepEqual(
      actions.map((a) => a.op).filter((op) => op !== "folder"), // a new folder's attributes at the end
      ["remove", create],
      `${before.kind} -> ${after.kind}`,
    );
  }
});

Deno.test("plan: a replica folder holding excluded entries is kept; all else matches the source", () => {
  fc.assert(
    fc.property(worldArb(), worldArb(), fc.nat(), (source, replica, pick) => {
      // Some replica folders hold excluded entries (which no tree shows), and so do their ancestors.
      const dirs = [...replica.tree].filter(([, e]) => e.kind === "dir").map(([p]) => p);
      const holdsExcluded = new Set<string>();
      for (const [i, dir] of dirs.entries()) {
        if ((pick >> (i % 30)) & 1) {
          for (let at = dir; at !== ""; at = parentOf(at)) holdsExcluded.add(at);
        }
      }
      const actions = plan(source.tree, replica.tree, {
        changed: changedBetween(source, replica),
        holdsExcluded,
      });
      const result = applyToModel(actions, source, replica);
      for (const dir of holdsExcluded) assert.equal(result.tree.get(dir)?.kind, "dir", dir);
      const conflicts = actions.filter((a) => a.op === "keep" && a.blocks !== undefined)
        .map((a) => a.path);
      const blocked = (path: string) =>
        conflicts.some((c) => path === c || path.startsWith(`${c}/`));
      const want = visible(source).filter(([path]) => !blocked(path));
      const have = visible(result).filter(([path]) =>
        !(holdsExcluded.has(path) && source.tree.get(path)?.kind !== "dir")
      );
      assert.deepEqual(have, want);
    }),
    { numRuns: 500 },
  );
});

Deno.test("plan: at a replica's precision of whole seconds, mtimes cut to the second are the same (#20)", () => {
  const file = (mtimeMs: number): Entry => ({
    kind: "file",
    size: 1,
    mtimeMs,
    ctimeMs: 0,
    ino: 1,
    mode: 0o644,
  });
  const link = (mtimeMs: number): Entry => ({ ...file(mtimeMs), kind: "symlink", target: "t" });
  const dir = (mtimeMs: number): Entry => ({ ...file(mtimeMs), kind: "dir", mode: 0o755 });
  const folder = (precision: number | undefined, replicaMs: number) =>
    planFolder({
      path: "d",
      self: { source: dir(1_700_000_000_456), replica: dir(replicaMs) },
      source: [{ name: "f", entry: file(1_700_000_000_456) }, {
        name: "l",
        entry: link(1_700_000_000_456),
      }],
      replica: [{ name: "f", entry: file(replicaMs) }, { name: "l", entry: link(replicaMs) }],
      changed: new Set(),
      incomplete: false,
      holdsExcluded: () => false,
      hasTemps: false,
      deletions: true,
      owners: undefined,
      ...(precision === undefined ? {} : { precision }),
    });
  const seconds = folder(1000, 1_700_000_000_000);
  assert.deepEqual(seconds.items, []);
  assert.equal(seconds.attributes, undefined);
  // A second apart is a change at any precision; milliseconds apart only at the millisecond's.
  assert.deepEqual(folder(1000, 1_699_999_999_000).items.map((item) => item.write?.op), [
    "touch",
    "lattr",
  ]);
  assert.deepEqual(folder(undefined, 1_700_000_000_000).items.map((item) => item.write?.op), [
    "touch",
    "lattr",
  ]);
});

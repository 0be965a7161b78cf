/**
 * A model of two trees for property tests of the planner and the march: a
 * tree with file contents, random pairs of them, and an in-memory replica
 * that checks each action is possible where it is applied.
 */
import fc from "npm:fast-check@^4.11.0";
import assert from "node:assert/strict";
import type { Entry } from "../../lib/core/entry.ts";
import type { Action } from "../../lib/engine/plan.ts";
import { parentOf } from "../../lib/core/paths.ts";

/** A tree plus the content of each file (entries only carry sizes). */
export interface World {
  tree: Map<string, Entry>;
  content: Map<string, string>;
}

const segment = fc.constantFrom("a", "b", "c", "a b", "é", "e\u0301", "-x");
const itemArb = fc.record({
  segments: fc.array(segment, { minLength: 1, maxLength: 4 }),
  kind: fc.constantFrom("file", "dir", "symlink") as fc.Arbitrary<"file" | "dir" | "symlink">,
  content: fc.constantFrom("", "x", "y", "xy", "hello"),
  mode: fc.constantFrom(0o644, 0o600, 0o755, 0o555, 0o700),
  mtimeMs: fc.constantFrom(1_000, 2_000, 3_000),
  target: fc.constantFrom("a", "../b", "nowhere"),
});

/** Build a consistent tree: every ancestor of an item is a folder. */
export function worldArb(): fc.Arbitrary<World> {
  return fc.array(itemArb, { maxLength: 25 }).map((items) => {
    const world: World = { tree: new Map(), content: new Map() };
    let ino = 1;
    for (const item of items) {
      const path = item.segments.join("/");
      const ancestors = item.segments.slice(0, -1).map((_, i) =>
        item.segments.slice(0, i + 1).join("/")
      );
      if (ancestors.some((dir) => (world.tree.get(dir)?.kind ?? "dir") !== "dir")) continue;
      if (world.tree.has(path)) continue;
      if (item.kind !== "dir" && [...world.tree.keys()].some((p) => p.startsWith(`${path}/`))) {
        continue;
      }
      for (const dir of ancestors) {
        if (!world.tree.has(dir)) world.tree.set(dir, entry("dir", 0, 0o755, 1_000, ino++));
      }
      const size = item.kind === "file" ? item.content.length : 0;
      world.tree.set(path, {
        ...entry(item.kind, size, item.mode, item.mtimeMs, ino++),
        ...(item.kind === "symlink" ? { target: item.target } : {}),
      });
      if (item.kind === "file") world.content.set(path, item.content);
    }
    return world;
  });
}

export function entry(
  kind: Entry["kind"],
  size: number,
  mode: number,
  mtimeMs: number,
  ino: number,
) {
  return { kind, size, mode, mtimeMs, ctimeMs: 0, ino };
}

/** Same-size file pairs whose content differs: what the hashing stage reports. */
export function changedBetween(source: World, replica: World): Set<string> {
  const changed = new Set<string>();
  for (const [path, content] of source.content) {
    const other = replica.content.get(path);
    if (other !== undefined && other.length === content.length && other !== content) {
      changed.add(path);
    }
  }
  return changed;
}

/** Apply actions to an in-memory replica, asserting each one is possible there. */
export function applyToModel(actions: readonly Action[], source: World, replica: World): World {
  const tree = new Map(replica.tree);
  const content = new Map(replica.content);
  const sealed = new Set<string>(); // folders whose final mode has been set
  const parentReady = (path: string) => {
    const parent = parentOf(path);
    assert.ok(parent === "" || tree.get(parent)?.kind === "dir", `no folder for ${path}`);
    assert.ok(!sealed.has(parent), `${path} written after its folder was sealed`);
    writable(path);
  };
  /** Not root: the folder holding `path` must let its owner write. */
  const writable = (path: string) => {
    const parent = parentOf(path);
    const mode = parent === "" ? 0o755 : tree.get(parent)?.mode ?? 0;
    assert.equal(mode & 0o700, 0o700, `${path} written in a folder of mode ${mode.toString(8)}`);
  };
  /** A write in a folder changes its mtime, as on a disk. */
  const disturb = (path: string) => {
    const parent = tree.get(parentOf(path));
    if (parent?.kind === "dir") tree.set(parentOf(path), { ...parent, mtimeMs: -1 });
  };
  for (const action of actions) {
    const existing = tree.get(action.path);
    if (["remove", "mkdir", "copy", "symlink"].includes(action.op)) disturb(action.path);
    switch (action.op) {
      case "remove":
        assert.equal(existing?.kind, action.kind, `remove ${action.path}`);
        writable(action.path);
        for (const path of [...tree.keys()]) {
          if (path === action.path || path.startsWith(`${action.path}/`)) {
            tree.delete(path);
            content.delete(path);
          }
        }
        break;
      case "mkdir":
        parentReady(action.path);
        assert.equal(existing, undefined, `mkdir over ${action.path}`);
        tree.set(action.path, { ...source.tree.get(action.path)!, mode: action.mode, mtimeMs: -1 });
        break;
      case "copy":
        parentReady(action.path);
        assert.ok(existing === undefined || existing.kind === "file", `copy over ${action.path}`);
        tree.set(action.path, action.source);
        content.set(action.path, source.content.get(action.path)!);
        break;
      case "symlink":
        parentReady(action.path);
        assert.ok(existing === undefined || existing.kind === "symlink");
        tree.set(action.path, source.tree.get(action.path)!);
        break;
      case "touch":
        assert.equal(existing?.kind, "file");
        tree.set(action.path, {
          ...existing!,
          mode: action.source.mode,
          mtimeMs: action.source.mtimeMs,
        });
        break;
      case "folder":
        if (action.path === "") break; // the root is not in the model's trees
        assert.equal(existing?.kind, "dir");
        tree.set(action.path, { ...existing!, mode: action.mode, mtimeMs: action.mtimeMs });
        if (!action.opening) sealed.add(action.path);
        break;
      case "lattr":
        assert.equal(existing?.kind, "symlink");
        if (action.mtimeMs !== undefined) {
          tree.set(action.path, { ...existing!, mtimeMs: action.mtimeMs });
        }
        break;
      case "keep":
        assert.equal(existing?.kind, "dir", `keep ${action.path}`);
        break;
    }
  }
  return { tree, content };
}

/** The parts of an entry that mirroring must reproduce. */
export function visible(world: World): [string, unknown][] {
  return [...world.tree].sort(([a], [b]) => (a < b ? -1 : 1)).map(
    ([path, e]): [string, unknown] => {
      switch (e.kind) {
        case "file":
          return [path, ["file", e.mode, e.mtimeMs, world.content.get(path)]];
        case "dir":
          return [path, ["dir", e.mode, e.mtimeMs]];
        default:
          return [path, [e.kind, e.target, e.mtimeMs]];
      }
    },
  );
}

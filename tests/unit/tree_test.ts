import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.11.0";
import type { Entry } from "../../lib/core/entry.ts";
import { PackedTree } from "../../lib/core/tree.ts";

Deno.test("tree: a packed tree reads back what was set, in order", () => {
  const entry = fc.oneof(
    fc.record({
      kind: fc.constantFrom("file" as const, "dir" as const, "other" as const),
      size: fc.nat(),
      mtimeMs: fc.integer({ min: 0, max: 2 ** 42 }),
      ctimeMs: fc.integer({ min: 0, max: 2 ** 42 }),
      ino: fc.integer({ min: 0, max: 2 ** 52 }),
      mode: fc.integer({ min: 0, max: 0o7777 }),
    }),
    fc.record({
      kind: fc.constant("symlink" as const),
      size: fc.nat(),
      mtimeMs: fc.nat(),
      ctimeMs: fc.nat(),
      ino: fc.nat(),
      mode: fc.constant(0o777),
      target: fc.string(),
    }),
  ).map((entry): Entry => ({ ...entry })); // plain objects, as scans make
  const path = fc.oneof(
    fc.constantFrom("a", "a/b", "é x", "\n"), // often replaced
    fc.string({ unit: "binary", minLength: 1, maxLength: 8 }).filter((p) => !p.includes("\0")),
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(path, entry), { maxLength: 200 }), (sets) => {
      const model = new Map<string, Entry>(), tree = new PackedTree();
      for (const [path, entry] of sets) {
        model.set(path, entry);
        tree.set(path, entry);
      }
      assert.equal(tree.size, model.size);
      assert.deepEqual([...tree], [...model]);
      assert.deepEqual([...tree.keys()], [...model.keys()]);
      for (const [path, entry] of model) assert.deepEqual(tree.get(path), entry);
    }),
    { numRuns: 200 },
  );
});

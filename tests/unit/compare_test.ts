import assert from "node:assert/strict";
import { comparePair } from "../../lib/engine/compare.ts";
import { Hasher } from "../../lib/core/hash.ts";
import { LocalTree } from "../../lib/backends/local/local.ts";
import { PairIndex } from "../../lib/state/pair_index.ts";
import { scanTree } from "../../lib/engine/scan.ts";
import { withWork } from "../helpers.ts";

/**
 * Compare `work/src` with `work/rep` again and again with one index and one
 * hasher, as if both scans had started at `observedAt()`.
 */
function comparer(work: string, observedAt: () => number) {
  const index = new PairIndex(), hasher = new Hasher();
  const trees = {
    source: new LocalTree(`${work}/src`, { hasher }),
    replica: new LocalTree(`${work}/rep`, { hasher }),
  };
  /** The same-size pairs whose content differs, as a cycle compares them. */
  const compare = async () => {
    const source = await scanTree(trees.source), replica = await scanTree(trees.replica);
    const changed = new Set<string>();
    for (const [path, src] of source.tree) {
      const dst = replica.tree.get(path);
      if (src.kind !== "file" || dst?.kind !== "file") continue;
      const verdict = await comparePair(trees, path, src, dst, index, observedAt());
      if (verdict.differs) changed.add(path);
    }
    return { changed };
  };
  return { compare, hasher };
}

Deno.test("compare: an unchanged pair is not read again once its keys have settled", async () => {
  await withWork(async (work) => {
    Deno.mkdirSync(`${work}/rep`);
    for (const side of ["src", "rep"]) Deno.writeTextFileSync(`${work}/${side}/f`, "same bytes");
    const { compare, hasher } = comparer(work, () => Date.now() + 2_000);
    assert.equal((await compare()).changed.size, 0);
    assert.equal(hasher.hashedBytes, 20);
    assert.equal((await compare()).changed.size, 0);
    assert.equal(hasher.hashedBytes, 20, "second comparison read nothing");
    // A later second, so the rewrite's key differs (no racy same-tick write).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    Deno.writeTextFileSync(`${work}/src/f`, "SAME BYTES");
    assert.deepEqual([...(await compare()).changed], ["f"]);
    assert.equal(hasher.hashedBytes, 30, "only the changed side was read again");
  });
});

Deno.test("compare: keys observed in the second of their ctime are not trusted (racy edits)", async () => {
  await withWork(async (work) => {
    Deno.mkdirSync(`${work}/rep`);
    for (const side of ["src", "rep"]) Deno.writeTextFileSync(`${work}/${side}/f`, "same");
    // Observed within the second of the files' ctime, whenever the test runs.
    const ctimeSecond = Deno.statSync(`${work}/src/f`).ctime!.getTime();
    const { compare, hasher } = comparer(work, () => ctimeSecond + 500);
    await compare();
    await compare();
    assert.equal(hasher.hashedBytes, 16, "a fresh file is hashed again until it settles");
  });
});

import assert from "node:assert/strict";
import { treeDigest } from "../../lib/digest.ts";

Deno.test("digest: the tree digest of many lines is the MD5 of all of them, sorted", async () => {
  const { createHash } = await import("node:crypto");
  const lines = Array.from({ length: 10_000 }, (_, i) => `file 0644 d${i % 7}/f${i * 7919} x\n`);
  const expected = createHash("md5").update([...lines].sort().join("")).digest("hex");
  assert.equal(await treeDigest(lines), expected);
  assert.equal(
    await treeDigest([...lines].reverse()),
    expected,
    "order of the input does not matter",
  );
});

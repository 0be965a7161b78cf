import assert from "node:assert/strict";
import { entryLine, FolderDigests, treeDigest } from "../../lib/engine/digest.ts";
import type { Entry } from "../../lib/core/entry.ts";
import { PairIndex } from "../../lib/state/pair_index.ts";

const file = (size: number, ino: number): Entry => ({
  kind: "file",
  size,
  mtimeMs: 1_000,
  ctimeMs: 0,
  ino,
  mode: 0o644,
});
const dir: Entry = { kind: "dir", size: 0, mtimeMs: 0, ctimeMs: 0, ino: 99, mode: 0o755 };
const MD5 = { a: "0cc175b9c0f1b6a831c399e269772661", b: "92eb5ffee6ae2fec3ad71c777531578f" };

async function md5(text: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  return createHash("md5").update(text).digest("hex");
}

Deno.test("digest: a folder's digest is the MD5 of its entries' lines in name order; the tree's, the root's", async () => {
  const tree = new Map([["d", dir], ["d/b", file(1, 2)], ["a", file(1, 1)]]);
  const sums: Record<string, string> = { a: MD5.a, "d/b": MD5.b };
  const d = await md5(`file 0644 b ${MD5.b}\n`);
  assert.equal(
    await treeDigest(tree, (path) => sums[path]),
    await md5(`file 0644 a ${MD5.a}\ndir 0755 d ${d}\n`),
  );
});

Deno.test("digest: names are escaped and ordered by UTF-8 bytes", async () => {
  const lines = [
    entryLine("b\\c\nd", file(1, 1), MD5.a),
    entryLine("\u{1F600}", file(1, 2), MD5.a),
  ];
  const tree = new Map([["\uFFFD", file(1, 3)], ["\u{1F600}", file(1, 2)], [
    "b\\c\nd",
    file(1, 1),
  ]]);
  assert.equal(lines[0], `file 0644 b\\\\c\\nd ${MD5.a}\n`);
  // U+FFFD (EF BF BD) sorts before U+1F600 (F0 9F 98 80), though not by UTF-16 code units.
  assert.equal(
    await treeDigest(tree, () => MD5.a),
    await md5(
      `${lines[0]}${entryLine("\uFFFD", file(1, 3), MD5.a)}${lines[1]}`,
    ),
  );
});

Deno.test("digest: a walk's digest equals the whole tree's; an unchanged folder is not digested again", async () => {
  const index = new PairIndex(), settled = Date.now() + 10_000;
  const tree = new Map([["a", file(1, 1)], ["d", dir], ["d/b", file(1, 2)]]);
  const sums: Record<string, string> = { a: MD5.a, "d/b": MD5.b };
  const walk = async (digests: FolderDigests) => {
    const d = await digests.folder("d", [{ name: "b", entry: tree.get("d/b")!, md5: MD5.b }], true);
    return await digests.folder("", [
      { name: "a", entry: tree.get("a")!, md5: MD5.a },
      { name: "d", entry: dir, node: d! },
    ], true);
  };
  const root = await walk(new FolderDigests(index, settled));
  assert.equal(root?.digest, await treeDigest(tree, (path) => sums[path]));
  assert.equal(index.folderDigest("", root!.print), root!.digest, "recorded");
  const again = await walk(new FolderDigests(index, settled));
  assert.equal(again?.digest, root?.digest);
});

Deno.test("digest: MD5s unknown during the walk are read at the end; too many give it up", async () => {
  const index = new PairIndex(), settled = Date.now() + 10_000;
  const digests = new FolderDigests(index, settled);
  const root = await digests.folder("", [{ name: "a", entry: file(1, 1) }], true);
  assert.equal(root?.digest, undefined, "waiting");
  const read: string[] = [];
  const digest = await digests.finish(root, (path) => (read.push(path), Promise.resolve(MD5.a)));
  assert.deepEqual(read, ["a"]);
  assert.equal(digest, await md5(`file 0644 a ${MD5.a}\n`));

  // More than the budget: nothing is read, no line held.
  const many = new FolderDigests(index, settled);
  const children = Array.from({ length: 2001 }, (_, i) => ({ name: `f${i}`, entry: file(1, i) }));
  assert.equal(await many.folder("", children, true), undefined);
  assert.ok(many.gaveUp);
  const reads: string[] = [];
  assert.equal(
    await many.finish(undefined, (path) => (reads.push(path), Promise.resolve(MD5.a))),
    "too much",
  );
  assert.deepEqual(reads, []);
  // Files whose copy learns their MD5 do not count against the budget; looked up, not read.
  const learnt = new FolderDigests(index, settled, (entry) => entry.ino % 2 === 0);
  const top = await learnt.folder("", children, true);
  const read2: string[] = [];
  const digest2 = await learnt.finish(
    top,
    (path) => (read2.push(path), Promise.resolve(MD5.a)),
    (_path, entry) => entry.ino % 2 === 0 ? MD5.a : undefined,
  );
  assert.equal(read2.length, 1000);
  assert.match(digest2, /^[0-9a-f]{32}$/);
  // A file that cannot be read: no digest, and why.
  const broken = new FolderDigests(index, settled);
  const one = await broken.folder("", [{ name: "a", entry: file(1, 1) }], true);
  assert.equal(await broken.finish(one, () => Promise.resolve(undefined)), "unreadable");
});

Deno.test("digest: a subfolder walked later fills its hole", async () => {
  const digests = new FolderDigests(new PairIndex(), Date.now() + 10_000);
  const hole = digests.hole();
  const root = await digests.folder("", [{ name: "d", entry: dir, node: hole }], true);
  digests.fill(
    hole,
    await digests.folder("d", [{ name: "b", entry: file(1, 2), md5: MD5.b }], true),
  );
  const tree = new Map([["d", dir], ["d/b", file(1, 2)]]);
  assert.equal(
    await digests.finish(root, () => Promise.resolve(undefined)),
    await treeDigest(tree, () => MD5.b),
  );
});

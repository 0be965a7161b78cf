/** The pair index: what is known of file contents, folder by folder. */
import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.11.0";
import { type Entry, keyOf, statKey } from "../../lib/core/entry.ts";
import { PairIndex } from "../../lib/state/pair_index.ts";

const entry = fc.record({
  kind: fc.constant("file" as const),
  size: fc.nat(),
  mtimeMs: fc.integer({ min: 0, max: 2 ** 42 }),
  ctimeMs: fc.integer({ min: 0, max: 2 ** 32 }).map((s) => s * 1000),
  ino: fc.integer({ min: 0, max: 2 ** 52 }),
  mode: fc.constant(0o644),
});
const path = fc.oneof(
  fc.constantFrom("a", "b/c"), // often replaced
  fc.string({ unit: "binary", minLength: 1, maxLength: 12 }).filter((p) => !p.includes("\0")),
);
const md5 = fc.uint8Array({ minLength: 16, maxLength: 16 })
  .map((b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(""));

Deno.test("index: any mix of records, copies and forgets survives its bytes", () => {
  const op = fc.oneof(
    fc.record({ op: fc.constant("pair" as const), path, source: entry, replica: entry, md5 }),
    fc.record({ op: fc.constant("source" as const), path, source: entry, md5 }),
    fc.record({ op: fc.constant("copy" as const), path, source: entry, replica: entry }),
    fc.record({ op: fc.constant("racy" as const), path, source: entry, replica: entry, md5 }),
    fc.record({ op: fc.constant("distrust" as const), path }),
    fc.record({ op: fc.constant("forget" as const), path }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      type Known = { source: Entry; replica: Entry | undefined; md5: string | undefined };
      const model = new Map<string, Known>();
      const index = new PairIndex();
      const settled = Number.MAX_SAFE_INTEGER;
      for (const o of ops) {
        const old = model.get(o.path);
        const sameSource = (source: Entry) =>
          old !== undefined && statKey(old.source) === statKey(source);
        switch (o.op) {
          case "pair":
            index.record(o.path, o.source, o.replica, o.md5, settled);
            model.set(o.path, { source: o.source, replica: o.replica, md5: o.md5 });
            break;
          case "source":
            index.recordSource(o.path, o.source, o.md5, settled);
            if (!sameSource(o.source)) {
              model.set(o.path, { source: o.source, replica: undefined, md5: o.md5 });
            } else if (old!.md5 === undefined) old!.md5 = o.md5;
            break;
          case "copy": {
            index.recordCopy(o.path, o.source, keyOf(o.replica), settled);
            const kept = sameSource(o.source) ? old!.md5 : undefined;
            model.set(o.path, { source: o.source, replica: o.replica, md5: kept });
            break;
          }
          case "racy":
            index.record(o.path, o.source, o.replica, o.md5, o.source.ctimeMs); // not settled
            model.delete(o.path);
            break;
          case "distrust":
            index.distrustReplica(o.path);
            if (old?.md5 === undefined) model.delete(o.path);
            else old.replica = undefined;
            break;
          case "forget":
            index.forget(o.path);
            model.delete(o.path);
        }
      }
      for (const copy of [index, PairIndex.fromBytes(index.toBytes())]) {
        assert.equal(copy.size, model.size);
        for (const [path, known] of model) {
          assert.equal(copy.md5(path), known.md5);
          assert.ok(copy.knows(path, "source", known.source));
          const replica = known.replica ?? { ...known.source, size: known.source.size + 1 };
          assert.equal(copy.knows(path, "replica", replica), known.replica !== undefined);
        }
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("index: truncated or damaged bytes are refused, never half-loaded", () => {
  const index = new PairIndex(), now = Number.MAX_SAFE_INTEGER;
  const file: Entry = { kind: "file", size: 3, mtimeMs: 1, ctimeMs: 0, ino: 7, mode: 0o644 };
  index.record("a", file, file, "0123456789abcdef0123456789abcdef", now);
  index.record("b/c", file, file, "00000000000000000000000000000000", now);
  const bytes = index.toBytes();
  assert.equal(PairIndex.fromBytes(bytes).size, 2);
  for (let length = 0; length < bytes.length; length++) {
    assert.throws(() => PairIndex.fromBytes(bytes.subarray(0, length)), `cut to ${length} bytes`);
  }
});

const settled = Number.MAX_SAFE_INTEGER;
const file: Entry = { kind: "file", size: 3, mtimeMs: 1, ctimeMs: 0, ino: 7, mode: 0o644 };
const MD5 = "0123456789abcdef0123456789abcdef";

Deno.test("index: a walk keeps the pairs of the files it met, and drops the folders it did not visit", () => {
  const index = new PairIndex();
  for (const path of ["a", "b", "d/x", "d/y", "gone/z"]) {
    index.record(path, file, file, MD5, settled);
  }
  index.sweep(); // the end of the walk that recorded them: all kept
  assert.equal(index.size, 5);
  index.visit("", ["a"]); // b is no longer in the source
  index.visit("d", ["x", "y"]);
  index.sweep(); // "gone" was not visited
  assert.equal(index.size, 3);
  assert.ok(index.knows("a", "source", file) && !index.knows("b", "source", file));
  assert.ok(index.knows("d/y", "source", file) && !index.knows("gone/z", "source", file));
  const copy = PairIndex.fromBytes(index.toBytes());
  assert.equal(copy.size, 3);
  assert.equal(copy.md5("d/x"), MD5);
});

Deno.test("index: many names added out of order are found, before and after their bytes", () => {
  const index = new PairIndex();
  const names = Array.from({ length: 500 }, (_, i) => `f${(i * 7919) % 500}`);
  names.forEach((name, i) => index.record(`d/${name}`, { ...file, ino: i }, file, MD5, settled));
  for (const copy of [index, PairIndex.fromBytes(index.toBytes())]) {
    assert.equal(copy.size, 500);
    names.forEach((name, i) => assert.ok(copy.knows(`d/${name}`, "source", { ...file, ino: i })));
  }
});

Deno.test("index: a folder's digest is kept for the print it was recorded with", () => {
  const index = new PairIndex();
  index.recordFolderDigest("d", 42, MD5);
  const copy = PairIndex.fromBytes(index.toBytes());
  assert.equal(copy.folderDigest("d", 42), MD5);
  assert.equal(copy.folderDigest("d", 43), undefined);
  assert.equal(copy.folderDigest("e", 42), undefined);
});

Deno.test("index: bytes at any offset of a buffer load (the arrays are aligned copies)", () => {
  const index = new PairIndex();
  index.record("a", file, file, MD5, settled);
  const bytes = index.toBytes();
  const shifted = new Uint8Array(bytes.length + 3);
  shifted.set(bytes, 3);
  assert.equal(PairIndex.fromBytes(shifted.subarray(3)).md5("a"), MD5);
});

Deno.test("index: a cycle that adds a hundred thousand pairs holds few of them loose, and finds them all", () => {
  const index = new PairIndex();
  const file = (i: number): Entry => ({
    kind: "file",
    size: i,
    mtimeMs: 1_000 + i,
    ctimeMs: 0,
    ino: i,
    mode: 0o644,
  });
  const md5 = (i: number) => i.toString(16).padStart(32, "0");
  let mostLoose = 0;
  // As an initial mirror adds them: folder after folder, a hundred files each.
  for (let i = 0; i < 100_000; i++) {
    index.record(
      `d${Math.floor(i / 100) % 30}/s${Math.floor(i / 100)}/f${i}`,
      file(i),
      file(i),
      md5(i),
      10_000, // observed well after the ctime: settled
    );
    if (i % 997 === 0) mostLoose = Math.max(mostLoose, index.loose);
  }
  assert.ok(mostLoose <= 4096 + 64, `${mostLoose} loose pairs at most`);
  assert.equal(index.size, 100_000);
  const loaded = PairIndex.fromBytes(index.toBytes());
  for (const i of [0, 99, 100, 4_095, 4_096, 55_555, 99_999]) {
    const path = `d${Math.floor(i / 100) % 30}/s${Math.floor(i / 100)}/f${i}`;
    for (const known of [index, loaded]) {
      assert.ok(known.knows(path, "source", file(i)), path);
      assert.ok(known.knows(path, "replica", file(i)), path);
      assert.equal(known.md5(path), md5(i));
    }
  }
});

Deno.test("pair index: source inodes find a pair moved; a folder moved takes what is below it (#19)", () => {
  const file = (ino: number, size = 3) => ({
    kind: "file" as const,
    size,
    mtimeMs: 1000,
    ctimeMs: 2000,
    ino,
    mode: 0o644,
  });
  const index = new PairIndex(), long = 10_000;
  index.recordCopy("a/x", file(11), [3, 1000, 2000, 91], long, "900150983cd24fb0d6963f7d28e17f72");
  index.recordCopy("a/y", file(12), [3, 1000, 2000, 92], long);
  index.visit("a", ["x", "y"], 500);
  for (const copy of [index, PairIndex.fromBytes(index.toBytes())]) {
    assert.deepEqual(copy.pathsOfInode(11), ["a/x"]);
    assert.deepEqual(copy.pathsOfInode(13), []);
    assert.equal(copy.folderOfInode(500), "a");
  }
  // The source no longer has a/x: dropped when the walk ends, found until then.
  index.visit("a", ["y"], 500);
  assert.deepEqual(index.pathsOfInode(11), ["a/x"]);
  index.movePair("a/x", "b/x", { ...file(11), ctimeMs: 3000 }, [3, 1000, 3000, 95], long);
  index.settle();
  assert.deepEqual(index.pathsOfInode(11), ["b/x"]);
  assert.equal(
    index.md5("b/x"),
    "900150983cd24fb0d6963f7d28e17f72",
    "what was known moves with it",
  );
  assert.equal(index.md5("a/x"), undefined);
  index.moveFolder("a", "c");
  assert.equal(index.folderOfInode(500), "c");
  assert.ok(index.knows("c/y", "replica", { ...file(92), mtimeMs: 1000 }));
  // An index saved before inodes were kept loads, with none.
  const old = PairIndex.fromBytes(withoutInodes(index.toBytes()), false);
  assert.ok(old.knows("c/y", "replica", { ...file(92), mtimeMs: 1000 }));
  assert.deepEqual(old.pathsOfInode(12), []);
});

/** The bytes of an index as the state's format 3 held them (no inodes). */
function withoutInodes(bytes: Uint8Array): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  let at = 0;
  const copy = (n: number) => {
    out.push(...bytes.subarray(at, at + n));
    at += n;
  };
  const pad = (n: number) => (8 - (n % 8)) % 8;
  const folders = view.getUint32(at, true);
  copy(4);
  for (let f = 0; f < folders; f++) {
    const pathLength = view.getUint32(at, true);
    copy(4 + pathLength);
    const count = view.getUint32(at, true), names = view.getUint32(at + 4, true);
    copy(8 + names);
    const fill = pad(at);
    out.push(...new Uint8Array(pad(out.length)));
    at += fill;
    copy(count * 16);
    at += count * 8; // the inodes
    copy(count * 17);
    at += pad(at);
    out.push(...new Uint8Array(pad(out.length)));
    copy(8 + 16);
    at += 8; // the folder's inode
  }
  return new Uint8Array(out);
}

Deno.test("index: the paths of an inode stay right through any mix of sets, forgets, walks and compactions", () => {
  const names = ["a", "b", "d/x", "d/y", "d/e/z"];
  const op = fc.oneof(
    fc.record({
      op: fc.constant("copy" as const),
      path: fc.constantFrom(...names),
      ino: fc.integer({ min: 1, max: 4 }),
    }),
    fc.record({ op: fc.constant("forget" as const), path: fc.constantFrom(...names) }),
    fc.record({ op: fc.constant("ask" as const), ino: fc.integer({ min: 1, max: 4 }) }),
    // A walk of one folder keeping some of its names (the rest dropped when it ends).
    fc.record({
      op: fc.constant("walk" as const),
      dir: fc.constantFrom("", "d"),
      keep: fc.subarray(["a", "b", "x", "y"]),
    }),
    // Many additions elsewhere: folders compacted, the lookup made anew.
    fc.record({ op: fc.constant("many" as const), count: fc.integer({ min: 60, max: 5000 }) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
      const index = new PairIndex(), model = new Map<string, number>();
      const key = (ino: number) => [3, 1000, 2000, ino] as const;
      let many = 0;
      for (const o of ops) {
        if (o.op === "copy") {
          index.recordCopy(o.path, { ...file, ino: o.ino }, key(o.ino), 10_000);
          model.set(o.path, o.ino);
        } else if (o.op === "forget") {
          index.forget(o.path);
          model.delete(o.path);
        } else if (o.op === "walk") {
          const here = [...model.keys()].filter((p) =>
            (p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : "") === o.dir
          ).map((p) => p.slice(p.lastIndexOf("/") + 1));
          const kept = here.filter((name) => o.keep.includes(name)).sort();
          index.visit(o.dir, kept);
          index.settle();
          for (const name of here) {
            if (!kept.includes(name)) model.delete(o.dir === "" ? name : `${o.dir}/${name}`);
          }
        } else if (o.op === "many") {
          for (let i = 0; i < o.count; i++) {
            index.recordCopy(
              `m${many % 3}/f${many}`,
              { ...file, ino: 100 + many },
              key(100),
              10_000,
            );
            many++;
          }
        } else {
          const expected = [...model].filter(([, ino]) => ino === o.ino).map(([p]) => p).sort();
          assert.deepEqual(index.pathsOfInode(o.ino).sort(), expected);
        }
      }
      for (let ino = 1; ino <= 4; ino++) {
        const expected = [...model].filter(([, i]) => i === ino).map(([p]) => p).sort();
        assert.deepEqual(index.pathsOfInode(ino).sort(), expected);
        for (const path of expected) assert.equal(index.inodeOf(path), ino);
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("index: a pair whose slot moved when its folder was compacted is still found by its inode", () => {
  const index = new PairIndex(), key = (ino: number) => [3, 1000, 2000, ino] as const;
  index.recordCopy("d/b", { ...file, ino: 1 }, key(1), 10_000);
  index.visit("d", ["b"]);
  assert.deepEqual(index.pathsOfInode(1), ["d/b"]);
  index.recordCopy("d/a", { ...file, ino: 2 }, key(2), 10_000); // sorts before b
  index.visit("d", ["a", "b"]); // compacted: b's slot is now 1
  assert.deepEqual(index.pathsOfInode(1), ["d/b"]);
  assert.deepEqual(index.pathsOfInode(2), ["d/a"]);
});

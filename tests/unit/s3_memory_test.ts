/**
 * What an S3 replica remembers of its objects (`lib/backends/s3/memory.ts`): tied to
 * each object's size, ETag and last-modified time, swept by listings, kept
 * through bytes.
 */
import assert from "node:assert/strict";
import { type Known, ObjectMemory } from "../../lib/backends/s3/memory.ts";

const known = (etag: string, lastModified = 5): Known => ({
  etag,
  lastModified,
  size: 1,
  mtimeMs: 1_700_000_000_000,
  mode: 0o644,
});

Deno.test("s3 memory: an object is known while its size, ETag and time stay; a first time is adopted", () => {
  const memory = new ObjectMemory();
  memory.set("a", known("e1", NaN));
  assert.equal(memory.match("a", { etag: "e1", size: 1, lastModified: 9 })?.lastModified, 9);
  assert.equal(memory.match("a", { etag: "e1", size: 1, lastModified: 9 })?.etag, "e1");
  // Someone else's metadata copy keeps the ETag but not the time: forgotten.
  assert.equal(memory.match("a", { etag: "e1", size: 1, lastModified: 10 }), undefined);
  assert.equal(memory.get("a"), undefined);
  memory.set("b", known("e2"));
  assert.equal(memory.match("b", { etag: "e2", size: 2, lastModified: 5 }), undefined);
});

Deno.test("s3 memory: a listing sweeps what it no longer shows, folder by folder", () => {
  const memory = new ObjectMemory();
  for (const path of ["", "a", "d/", "d/b", "d/c.rclonelink", "d/e/", "d/e/f"]) {
    memory.set(path, known(path));
  }
  memory.listed("d", new Set(["b", "e/"]));
  assert.equal(memory.get("d/c.rclonelink"), undefined);
  assert.ok(memory.get("d/b") && memory.get("d/e/") && memory.get("d/e/f"));
  memory.listed("", new Set(["a"])); // the root's own marker ("") is not an entry of it
  assert.ok(memory.get(""), "the root's marker stays");
  assert.equal(memory.get("d/"), undefined);
  memory.forgetFolder("d");
  assert.equal(memory.get("d/e/f"), undefined);
  assert.equal(memory.get("d/b"), undefined);
  assert.deepEqual(memory.size, 2);
});

Deno.test("s3 memory: kept through bytes; unreadable bytes leave it empty", () => {
  const memory = new ObjectMemory();
  memory.set("d/l.rclonelink", { ...known("e"), target: "../x", md5: "00ff" });
  assert.ok(memory.dirty);
  const again = new ObjectMemory();
  again.load(memory.toBytes());
  assert.deepEqual(again.get("d/l.rclonelink"), memory.get("d/l.rclonelink"));
  assert.equal(again.dirty, false);
  for (const bad of ["not json", JSON.stringify({ version: 99, folders: [] }), "{}"]) {
    const broken = new ObjectMemory();
    broken.set("x", known("e"));
    broken.load(new TextEncoder().encode(bad));
    assert.equal(broken.size, 0, bad);
  }
});

/** The bucket layout of a tree (rclone's conventions): metadata both ways, folder listings read as entries. */
import fc from "npm:fast-check@^4.11.0";
import assert from "node:assert/strict";
import { compareNames } from "../../lib/core/paths.ts";
import type { S3Object } from "../../lib/backends/s3/store.ts";
import {
  attributesOf,
  entriesOf,
  isLinkName,
  LINK_SUFFIX,
  metaOf,
  objectName,
} from "../../lib/backends/s3/layout.ts";

Deno.test("s3 layout: an entry's mtime, mode and MD5 read back from its metadata", () => {
  fc.assert(
    fc.property(
      fc.constantFrom("file", "dir", "symlink") as fc.Arbitrary<"file" | "dir" | "symlink">,
      fc.integer({ min: 0, max: 2 ** 42 }),
      fc.integer({ min: 0, max: 0o7777 }),
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      (kind, mtimeMs, mode, md5) => {
        const hex = md5.toHex();
        const entry = { kind, size: 1, mtimeMs, ctimeMs: 0, ino: 1, mode };
        const meta = metaOf(entry, hex);
        const back = attributesOf(meta);
        assert.equal(back.mtimeMs, mtimeMs);
        assert.equal(back.mode, mode);
        assert.equal(back.md5, kind === "file" ? hex : undefined);
        assert.match(
          meta.mode!,
          kind === "file" ? /^10[0-7]{4}$/ : kind === "dir" ? /^4[0-7]{4}$/ : /^12[0-7]{4}$/,
        );
      },
    ),
  );
});

Deno.test("s3 layout: metadata written by rclone reads; what is not a value is left out", () => {
  assert.deepEqual(attributesOf({ mtime: "1700000000.123456789", mode: "100640" }), {
    mtimeMs: 1_700_000_000_123,
    mode: 0o640,
  });
  assert.deepEqual(attributesOf({ mtime: "1700000000" }), { mtimeMs: 1_700_000_000_000 });
  assert.deepEqual(attributesOf({ mtime: "soon", mode: "rw-r--r--", md5chksum: "!!" }), {});
  assert.deepEqual(attributesOf({ md5chksum: "XUFAKrxLKna5cZ2REBfFkg==" }), {
    md5: "5d41402abc4b2a76b9719d911017c592",
  });
  assert.deepEqual(attributesOf({}), {});
});

Deno.test("s3 layout: object names; a source name that would read back as a symlink", () => {
  assert.equal(objectName("a", "file"), "a");
  assert.equal(objectName("a", "dir"), "a/");
  assert.equal(objectName("a", "symlink"), `a${LINK_SUFFIX}`);
  assert.ok(isLinkName("x.rclonelink"));
  assert.ok(!isLinkName("x.rclonelink.txt"));
});

Deno.test("s3 layout: a listing reads as the tree's entries, in its name order, clashes named", () => {
  const object = (name: string): S3Object => ({ name, size: 1, etag: "e", lastModified: 0 });
  // Listings come in the keys' byte order ("a b/" before "a/").
  const { entries, clashes } = entriesOf({
    folders: ["a b", "a", "x"],
    objects: ["a-", "é", "l.rclonelink", ".rclonelink", "x", "y", "y.rclonelink"].map(object),
    marker: true,
  });
  assert.deepEqual(entries.map((e) => [e.name, e.kind]), [
    [".rclonelink", "file"],
    ["a", "dir"],
    ["a b", "dir"],
    ["a-", "file"],
    ["l", "symlink"],
    ["x", "dir"],
    ["y", "file"],
    ["é", "file"],
  ]);
  assert.deepEqual(entries.map((e) => e.name), entries.map((e) => e.name).sort(compareNames));
  assert.equal(entries.find((e) => e.name === "l")?.object?.name, "l.rclonelink");
  assert.deepEqual(clashes, ["x", "y"]);
});

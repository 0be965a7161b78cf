/**
 * The state: the crash-safe state file and what a run keeps in it (unit and
 * property tests; the index's are in pair_index_test.ts, the end-to-end ones
 * in tests/e2e/state_test.ts).
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.11.0";
import type { Entry } from "../../lib/core/entry.ts";
import { MirrorState, StateFileError } from "../../lib/state/state.ts";
import { ObjectMemory } from "../../lib/backends/s3/memory.ts";
import { fileStore, PAGE, StateFile, type Store } from "../../lib/state/state_file.ts";
import { withWork } from "../helpers.ts";

/**
 * A store in memory that models a crash: bytes written since the last sync
 * may or may not have reached the disk, each write cut anywhere (`torn`).
 */
class CrashingStore implements Store {
  durable: Uint8Array = new Uint8Array(0);
  #pending: { offset: number; bytes: Uint8Array }[] = [];
  /**
   * A failed sync loses its writes, as Linux may (the pages are marked clean, never
   * written): still read back until a crash, never made durable. Default: they stay
   * pending, and may land later or never.
   */
  loseOnFailedSync = false;
  /** Writes a failed sync lost (see {@link loseOnFailedSync}). */
  #lost: { offset: number; bytes: Uint8Array }[] = [];
  /** Syncs left before the machine crashes in one (its writes not synced). */
  crashAtSyncLeft = Infinity;
  /** Writes left before the crash (a crash throws). */
  writesLeft = Infinity;

  size(): number {
    return this.#view().length;
  }
  read(offset: number, length: number): Uint8Array {
    return this.#view().slice(offset, offset + length);
  }
  write(offset: number, bytes: Uint8Array): void {
    if (this.writesLeft-- <= 0) throw new Error("crash");
    this.#pending.push({ offset, bytes: bytes.slice() });
  }
  /** Syncs left before one fails (its writes stay pending: they may land later or never). */
  syncsLeft = Infinity;
  sync(): void {
    if (this.crashAtSyncLeft-- === 0) throw new Error("crash");
    if (this.syncsLeft-- === 0) {
      if (this.loseOnFailedSync) {
        this.#lost.push(...this.#pending);
        this.#pending = [];
      }
      throw new Error("EIO: sync failed");
    }
    // What is synced now is read back over what a failed sync lost.
    this.#lost = this.#lost.filter((lost) =>
      !this.#pending.some((write) =>
        write.offset < lost.offset + lost.bytes.length &&
        lost.offset < write.offset + write.bytes.length
      )
    );
    this.durable = apply(this.durable, this.#pending);
    this.#pending = [];
  }
  truncate(length: number): void {
    this.durable = apply(this.durable, this.#pending).slice(0, length);
    this.#pending = [];
    this.#lost = this.#lost.filter((lost) => lost.offset + lost.bytes.length <= length);
  }
  /**
   * After a crash: the durable bytes plus some of the sectors (512 bytes)
   * written since the last sync, in any order: sector k survives if
   * `keep[k % keep.length]`.
   */
  crash(keep: readonly boolean[]): void {
    const sectors: { offset: number; bytes: Uint8Array }[] = [];
    for (const { offset, bytes } of this.#pending) {
      for (let at = 0; at < bytes.length;) {
        const end = Math.min(bytes.length, (Math.floor((offset + at) / 512) + 1) * 512 - offset);
        sectors.push({ offset: offset + at, bytes: bytes.subarray(at, end) });
        at = end;
      }
    }
    this.durable = apply(this.durable, sectors.filter((_, k) => keep[k % keep.length] ?? true));
    this.#pending = [];
    this.#lost = [];
  }
  #view(): Uint8Array {
    return apply(this.durable, [...this.#lost, ...this.#pending]);
  }
}

function apply(base: Uint8Array, writes: readonly { offset: number; bytes: Uint8Array }[]) {
  const end = Math.max(base.length, ...writes.map((w) => w.offset + w.bytes.length));
  const out = new Uint8Array(end);
  out.set(base);
  for (const { offset, bytes } of writes) out.set(bytes, offset);
  return out;
}

const text = (blob: Uint8Array) => new TextDecoder().decode(blob);

Deno.test("state file: a crash at any write, losing any sectors not synced, leaves the old or the new content", async () => {
  const encode = (s: string) => new TextEncoder().encode(s);
  // A commit: a note and a new blob, or (undefined) the note alone.
  const commit = fc.tuple(
    fc.string({ maxLength: 600 }), // notes that may span two sectors
    fc.option(fc.string({ maxLength: 3 * PAGE }), { nil: undefined }),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.array(commit, { minLength: 1, maxLength: 6 }),
      fc.nat({ max: 20 }),
      fc.array(fc.boolean(), { minLength: 1, maxLength: 16 }),
      fc.option(fc.nat({ max: 12 }), { nil: undefined }),
      async (commits, crashAt, keep, failSyncAt) => {
        const store = new CrashingStore();
        let file = new StateFile(store);
        await file.read();
        // What a reader must find: note and blob, as JSON.
        let committed: string | undefined, attempted: string | undefined;
        let blobNow: string | undefined;
        store.writesLeft = crashAt;
        store.syncsLeft = failSyncAt ?? Infinity;
        // A commit whose sync failed (a disk error) may or may not have landed.
        let failed: string | undefined;
        try {
          for (const [note, blob] of commits) {
            const content = blob ?? blobNow ?? "";
            attempted = JSON.stringify([note, content]);
            // After a failure the writer rewrites its blob (MirrorState does).
            const full = blob !== undefined || blobNow === undefined || failed !== undefined;
            try {
              await file.write(encode(note), full ? encode(content) : undefined);
            } catch (error) {
              if (!(error as Error).message.startsWith("EIO")) throw error;
              failed = attempted; // the writer goes on, as the mirror does after a WARNING
              continue;
            }
            blobNow = content;
            committed = attempted;
            failed = undefined;
          }
          attempted = undefined;
        } catch (error) {
          assert.equal((error as Error).message, "crash");
        }
        store.crash(keep);
        store.writesLeft = Infinity;
        store.syncsLeft = Infinity;
        file = new StateFile(store);
        const found = await file.read();
        if (committed === undefined && found.kind === "empty") return;
        assert.equal(found.kind, "blob", JSON.stringify(found));
        if (found.kind !== "blob") return;
        const seen = JSON.stringify([text(found.note), text(found.blob)]);
        assert.ok(
          seen === committed || seen === attempted || seen === failed,
          `found ${seen}`,
        );
        // And it goes on working after the crash.
        await file.write(encode("after"));
        await file.write(encode("then"), encode("a blob"));
        const again = await new StateFile(store).read();
        assert.equal(again.kind === "blob" && text(again.note) + text(again.blob), "thena blob");
      },
    ),
    { numRuns: 400 },
  );
});

Deno.test("state file: a meta page that lost its first sector is a torn write, not a foreign file", async () => {
  const store = new CrashingStore();
  const file = new StateFile(store);
  await file.read();
  await file.write(new TextEncoder().encode("n".repeat(1500)), new Uint8Array(10)); // page 1, 3 sectors
  const bytes = store.durable.slice();
  bytes.fill(0, PAGE, PAGE + 512); // its first sector never reached the disk
  store.durable = bytes;
  const found = await new StateFile(store).read();
  // Generation 0 (page 0) holds nothing: falling back to it is said (#18).
  assert.equal(found.kind, "damaged", "a torn page is never passed over in silence");
  store.durable = new TextEncoder().encode("x".repeat(3 * PAGE)); // someone else's file
  assert.equal((await new StateFile(store).read()).kind, "foreign");
  store.durable = new Uint8Array(3 * PAGE); // zeros are not ours either (say, an ISO image's start)
  assert.equal((await new StateFile(store).read()).kind, "foreign");
});

Deno.test("state file: falling back to the older meta page says why (#18)", async () => {
  const store = new CrashingStore();
  const file = new StateFile(store);
  await file.read();
  await file.write(new TextEncoder().encode("first"), new Uint8Array([1])); // page 1
  await file.write(new TextEncoder().encode("second"), new Uint8Array([2])); // page 0
  const clean = await new StateFile(store).read();
  assert.ok(clean.kind === "blob" && clean.older === undefined);
  const bytes = store.durable.slice();
  bytes.set(new TextEncoder().encode("GARBAGE"), 100); // inside page 0's fixed part
  store.durable = bytes;
  const found = await new StateFile(store).read();
  assert.equal(found.kind, "blob");
  if (found.kind !== "blob") return;
  assert.equal(new TextDecoder().decode(found.note), "first");
  assert.match(found.older ?? "", /damaged meta page/);
});

Deno.test("state file: stays within a few times its content however often it is rewritten", async () => {
  const store = new CrashingStore();
  const file = new StateFile(store);
  await file.read();
  const note = new Uint8Array(10);
  for (let size = 1000; size < 60_000; size += 777) {
    await file.write(note, new Uint8Array(size).fill(1));
  }
  assert.ok(store.size() < 2 * PAGE + 3 * 60_000 + 3 * 4096, `${store.size()} bytes`);
});

const pair = (work: string) => ({ source: `${work}/src`, replica: `${work}/rep` });

/** Open, record something and save a state at `path` for `work`'s pair. */
async function savedState(work: string, path: string): Promise<void> {
  const { state } = await MirrorState.open(path, pair(work));
  const file: Entry = { kind: "file", size: 3, mtimeMs: 1, ctimeMs: 0, ino: 7, mode: 0o644 };
  state.index.record("a", file, file, "0123456789abcdef0123456789abcdef", Date.now());
  state.sourceRoot = { id: "1:2", heldEntries: true };
  await state.save();
  state.close();
}

Deno.test("state: what a run saved is what the next run loads", async () => {
  await withWork(async (work) => {
    await savedState(work, `${work}/state`);
    const { state, warning } = await MirrorState.open(`${work}/state`, pair(work));
    try {
      assert.equal(warning, undefined);
      assert.equal(state.index.size, 1);
      assert.deepEqual(state.sourceRoot, { id: "1:2", heldEntries: true });
    } finally {
      state.close();
    }
  });
});

Deno.test("state: another pair's, a damaged, a truncated or another format's state is set aside", async () => {
  await withWork(async (work) => {
    const path = `${work}/state`;
    await savedState(work, path);
    const good = Deno.readFileSync(path);
    const cases: [
      string,
      () => void | Promise<void>,
      RegExp,
      { source: string; replica: string }?,
    ][] = [
      ["another pair", () => {}, /another pair of folders/, { source: "/x", replica: "/y" }],
      ["a flipped byte", () => {
        const bad = good.slice();
        bad[bad.length - 3]! ^= 0xff;
        Deno.writeFileSync(path, bad);
      }, /damaged/],
      [
        "a truncated file",
        () => Deno.writeFileSync(path, good.subarray(0, 2 * PAGE + 5)),
        /damaged/,
      ],
      ["a truncated header", () => Deno.writeFileSync(path, good.subarray(0, 7)), /damaged/],
      ["another format", async () => {
        using handle = await Deno.open(path, { read: true, write: true });
        const file = new StateFile(fileStore(handle));
        await file.read();
        await file.write(
          new TextEncoder().encode(JSON.stringify({ format: 99 })),
          new Uint8Array(8),
        );
      }, /another format \(99/],
    ];
    for (const [name, spoil, why, other] of cases) {
      Deno.writeFileSync(path, good);
      await spoil();
      const { state, warning } = await MirrorState.open(path, other ?? pair(work));
      try {
        assert.match(warning ?? "", why, name);
        assert.equal(state.index.size, 0, name);
        assert.equal(state.sourceRoot, undefined, name);
        await state.save(); // replaced by this run's state
      } finally {
        state.close();
      }
      const reopened = await MirrorState.open(path, other ?? pair(work));
      assert.equal(reopened.warning, undefined, `${name}: saved again`);
      reopened.state.close();
    }
  });
});

Deno.test("state: a state of the first format (version 0.1) is converted, not set aside", async () => {
  await withWork(async (work) => {
    const path = `${work}/state`;
    const a: Entry = { kind: "file", size: 3, mtimeMs: 1, ctimeMs: 0, ino: 7, mode: 0o644 };
    const b: Entry = { ...a, ino: 8 };
    // The first format: count, padding, 8 float64 keys a pair (NaN: replica
    // not known), 16 MD5 bytes, a flag byte (1: MD5 known), NUL-ended paths.
    const paths = new TextEncoder().encode("d/a\0e\0");
    const blob = new Uint8Array(8 + 2 * 64 + 2 * 16 + 2 + paths.length);
    const view = new DataView(blob.buffer);
    view.setUint32(0, 2, true);
    const keys = new Float64Array(blob.buffer, 8, 16);
    keys.set([a.size, a.mtimeMs, a.ctimeMs, a.ino, b.size, b.mtimeMs, b.ctimeMs, b.ino], 0);
    keys.set([a.size, a.mtimeMs, a.ctimeMs, a.ino, NaN, NaN, NaN, NaN], 8);
    blob.fill(0xab, 8 + 128, 8 + 128 + 16);
    blob[8 + 128 + 32] = 1;
    blob.set(paths, 8 + 128 + 32 + 2);
    {
      using handle = await Deno.open(path, { read: true, write: true, create: true });
      const file = new StateFile(fileStore(handle));
      await file.read();
      const note = { format: 1, littleEndian: true, ...pair(work), sourceRoot: null, runs: [] };
      await file.write(new TextEncoder().encode(JSON.stringify(note)), blob);
    }
    const { state, warning } = await MirrorState.open(path, pair(work));
    try {
      assert.equal(warning, undefined);
      assert.equal(state.index.size, 2);
      assert.ok(state.index.knows("d/a", "source", a) && state.index.knows("d/a", "replica", b));
      assert.equal(state.index.md5("d/a"), "ab".repeat(16));
      assert.ok(state.index.knows("e", "source", a) && !state.index.knows("e", "replica", a));
      assert.equal(state.index.md5("e"), undefined);
      await state.save();
    } finally {
      state.close();
    }
    const reopened = await MirrorState.open(path, pair(work));
    assert.equal(reopened.state.index.md5("d/a"), "ab".repeat(16), "saved in the new format");
    reopened.state.close();
  });
});

Deno.test("state: a file that is not a state file is refused and never overwritten", async () => {
  await withWork(async (work) => {
    const path = `${work}/notes.txt`;
    Deno.writeTextFileSync(path, "my precious notes\n");
    await assert.rejects(
      () => MirrorState.open(path, pair(work)),
      (error: Error) =>
        error instanceof StateFileError && /not a folder-mirror state/.test(error.message),
    );
    assert.equal(Deno.readTextFileSync(path), "my precious notes\n");
  });
});

Deno.test("state: a state file in use by another run is refused", async () => {
  await withWork(async (work) => {
    const { state } = await MirrorState.open(`${work}/state`, pair(work));
    try {
      await assert.rejects(
        () => MirrorState.open(`${work}/state`, pair(work)),
        (error: Error) =>
          error instanceof StateFileError && /in use by another running mirror/.test(error.message),
      );
      // A read-only open (a dry run) takes no lock.
      const readOnly = await MirrorState.open(`${work}/state`, pair(work), { readOnly: true });
      readOnly.state.close();
    } finally {
      state.close();
    }
    const again = await MirrorState.open(`${work}/state`, pair(work));
    again.state.close();
  });
});

Deno.test("state: temp names are recognised by run id only", async () => {
  await withWork(async (work) => {
    const first = await MirrorState.open(`${work}/state`, pair(work));
    const name = first.state.temps.next();
    await first.state.save();
    first.state.close();
    const second = await MirrorState.open(`${work}/state`, pair(work));
    try {
      assert.ok(second.state.isTemp(name), "an earlier run's temp");
      assert.ok(second.state.isTemp(second.state.temps.next()), "this run's temp");
      for (
        const other of [".mirror.tmp.notes.txt", ".mirror.tmp.0123456789abcdef", ".mirror.index"]
      ) {
        assert.ok(!second.state.isTemp(other), other);
      }
      second.state.tempsSwept([]);
      assert.ok(!second.state.isTemp(name), "forgotten once none is left");
    } finally {
      second.state.close();
    }
  });
});

Deno.test("state: a replica's memory is kept beside the index, across a save of the note alone", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/mirror.state`;
    const pair = { source: `${dir}/src`, replica: "http://127.0.0.1:1/bucket/prefix" };
    const known = { etag: "e1", lastModified: 5, size: 3, mtimeMs: 7, mode: 0o640, md5: "ab" };
    {
      const { state } = await MirrorState.open(path, pair);
      const memory = new ObjectMemory();
      state.remember(memory);
      memory.set("d/a.txt", known);
      state.index.recordSource(
        "d/a.txt",
        { kind: "file", size: 3, mtimeMs: 7, ctimeMs: 0, ino: 1, mode: 0o640 },
        "0123456789abcdef0123456789abcdef",
        5000,
      );
      await state.save();
      assert.equal(memory.dirty, false);
      // Only the note changes now: the blob on disk, memory included, stays as it is.
      state.sourceRoot = { id: "1:2", heldEntries: true };
      await state.save();
      state.close();
    }
    const { state, warning } = await MirrorState.open(path, pair);
    try {
      assert.equal(warning, undefined);
      assert.equal(state.sourceRoot?.id, "1:2");
      assert.equal(state.index.md5("d/a.txt"), "0123456789abcdef0123456789abcdef");
      const memory = new ObjectMemory();
      state.remember(memory);
      assert.deepEqual(memory.get("d/a.txt"), known);
    } finally {
      state.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("state file: a commit of the note alone goes to the page not in charge, also twice in a row (found by counting a run's commits)", async () => {
  const encode = (s: string) => new TextEncoder().encode(s);
  for (const [tornNote, lostSector] of [[600, 1], [900, 0], [900, 1]] as const) {
    const store = new CrashingStore();
    const file = new StateFile(store);
    await file.read();
    await file.write(encode("first"), encode("blob"));
    await file.write(encode("second")); // the note alone
    // The third commit's sync fails, and a crash loses one sector of its meta page:
    // the page it wrote is torn, so the page in charge before it must be another one.
    store.syncsLeft = 0;
    await assert.rejects(file.write(encode("x".repeat(tornNote))), /EIO/);
    store.crash(Array.from({ length: 4 }, (_, k) => k !== lostSector));
    const found = await new StateFile(store).read();
    assert.equal(found.kind, "blob");
    if (found.kind !== "blob") continue;
    assert.equal(text(found.note) + text(found.blob), "secondblob", `torn at ${lostSector}`);
  }
});

Deno.test("state file: after a sync that failed and lost its page, the next commit never writes over the last page on disk", async () => {
  const encode = (s: string) => new TextEncoder().encode(s);
  for (const second of ["note", "blob"] as const) {
    for (const third of ["note", "blob"] as const) {
      const store = new CrashingStore();
      store.loseOnFailedSync = true;
      const file = new StateFile(store);
      await file.read();
      await file.write(encode("first"), encode("blob one"));
      // The second commit's sync fails: its page is read back, but never reaches the disk.
      store.syncsLeft = second === "note" ? 0 : 1;
      await assert.rejects(
        file.write(encode("second"), second === "blob" ? encode("blob two") : undefined),
        /EIO/,
      );
      // The machine crashes in the third commit's sync, tearing what it wrote.
      store.crashAtSyncLeft = 0;
      await assert.rejects(
        file.write(encode("x".repeat(900)), third === "blob" ? encode("blob three") : undefined),
        /crash/,
      );
      store.crash([true, false]);
      const found = await new StateFile(store).read();
      assert.equal(found.kind, "blob", `${second}, ${third}: ${JSON.stringify(found)}`);
      if (found.kind !== "blob") continue;
      assert.equal(text(found.note) + text(found.blob), "firstblob one", `${second}, ${third}`);
    }
  }
});

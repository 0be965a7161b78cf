/**
 * The state: the pair index, the crash-safe state file and what a run keeps
 * in it (unit and property tests; the end-to-end ones are in state_e2e_test.ts).
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.11.0";
import { type Entry, keyOf, statKey } from "../../lib/entry.ts";
import { PairIndex } from "../../lib/pair_index.ts";
import { MirrorState, StateFileError } from "../../lib/state.ts";
import { fileStore, PAGE, StateFile, type Store } from "../../lib/state_file.ts";
import { withWork } from "../helpers.ts";

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

/**
 * A store in memory that models a crash: bytes written since the last sync
 * may or may not have reached the disk, each write cut anywhere (`torn`).
 */
class CrashingStore implements Store {
  durable: Uint8Array = new Uint8Array(0);
  #pending: { offset: number; bytes: Uint8Array }[] = [];
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
    if (this.syncsLeft-- === 0) throw new Error("EIO: sync failed");
    this.durable = this.#view();
    this.#pending = [];
  }
  truncate(length: number): void {
    this.durable = this.#view().slice(0, length);
    this.#pending = [];
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
  }
  #view(): Uint8Array {
    return apply(this.durable, this.#pending);
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
  assert.equal(found.kind, "empty", "generation 0 (page 0) is in charge: the old content");
  store.durable = new TextEncoder().encode("x".repeat(3 * PAGE)); // someone else's file
  assert.equal((await new StateFile(store).read()).kind, "foreign");
  store.durable = new Uint8Array(3 * PAGE); // zeros are not ours either (say, an ISO image's start)
  assert.equal((await new StateFile(store).read()).kind, "foreign");
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

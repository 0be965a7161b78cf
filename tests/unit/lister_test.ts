/**
 * Reading a tree ahead of the walk, on a worker: what the walk takes is what
 * it would have read itself, in its order, whatever subtrees it skips; the
 * worker stays within its limits; a broken worker costs nothing but speed.
 */
import fc from "npm:fast-check@^4.11.0";
import assert from "node:assert/strict";
import { LocalTree } from "../../lib/backends/local/local.ts";
import {
  type AheadAnswer,
  FolderLister,
  ListerGone,
  listingOf,
  readFolder,
  subfoldersOf,
  walkAhead,
} from "../../lib/backends/local/lister.ts";
import { comparePaths, sortNames } from "../../lib/core/paths.ts";
import { type World, worldArb } from "./model.ts";

/** Make the model tree `world` on disk, in a new temp folder. */
function materialize(world: World): string {
  const root = Deno.makeTempDirSync({ prefix: "lister-" });
  for (const [path, entry] of world.tree) {
    const at = `${root}/${path}`;
    if (entry.kind === "dir") Deno.mkdirSync(at, { recursive: true });
    else if (entry.kind === "file") Deno.writeTextFileSync(at, world.content.get(path) ?? "");
    else Deno.symlinkSync(entry.target ?? "x", at);
  }
  return root;
}

/** Folders of a tree on disk, depth-first, as the mirror's walk lists them. */
function walkOrder(root: string, dir = "", out: string[] = []): string[] {
  out.push(dir);
  for (const sub of subfoldersOf(readFolder(dir === "" ? root : `${root}/${dir}`))) {
    walkOrder(root, dir === "" ? sub : `${dir}/${sub}`, out);
  }
  return out;
}

Deno.test("lister: a walk that skips random subtrees takes, in its order, what it would read itself", async () => {
  await fc.assert(
    fc.asyncProperty(
      worldArb().chain((world) =>
        fc.tuple(
          fc.constant(world),
          fc.subarray([...world.tree].filter(([, e]) => e.kind === "dir").map(([p]) => p)),
        )
      ),
      async ([world, skipped]) => {
        const root = materialize(world);
        const lister = new FolderLister();
        try {
          const skip = new Set(skipped);
          const root_ = readFolder(root);
          lister.start(root, subfoldersOf(root_));
          let taken = 0;
          const walk = async (dir: string): Promise<void> => {
            const base = dir === "" ? root : `${root}/${dir}`;
            let listing;
            if (dir === "") listing = listingOf(root_);
            else {
              const ahead = lister.take(root, dir);
              assert.ok(ahead, `${dir} was read ahead`);
              listing = listingOf(await ahead);
              taken++;
            }
            assert.deepEqual(listing, listingOf(readFolder(base)));
            for (const { name, entry } of listing.entries) {
              const path = dir === "" ? name : `${dir}/${name}`;
              if (entry.kind === "dir" && !skip.has(path)) await walk(path);
            }
          };
          await walk("");
          const expected = walkOrder(root).filter((dir) =>
            dir !== "" && ![...skip].some((s) => dir === s || dir.startsWith(`${s}/`))
          );
          assert.equal(taken, expected.length);
        } finally {
          lister.close();
          Deno.removeSync(root, { recursive: true });
        }
      },
    ),
    { numRuns: 40 },
  );
});

Deno.test("lister: the worker's walk stops at its limits and goes on when credited", () => {
  const root = Deno.makeTempDirSync();
  for (const dir of ["a/x", "a/y", "b"]) Deno.mkdirSync(`${root}/${dir}`, { recursive: true });
  Deno.writeTextFileSync(`${root}/a/x/f`, "f");
  const answers: AheadAnswer[] = [];
  const handle = walkAhead((answer) => answers.push(answer), { folders: 2, entries: 100 });
  handle({ start: root, dirs: ["a", "b"], generation: 1 });
  assert.deepEqual(answers.map((a) => a.dir), ["a", "a/x"]); // depth-first, two at most
  Deno.removeSync(`${root}/b`);
  handle({ credit: [1, 3], generation: 0 }); // another walk's credit: ignored
  assert.equal(answers.length, 2);
  handle({ credit: [2, 3], generation: 1 });
  assert.deepEqual(answers.map((a) => a.dir), ["a", "a/x", "a/y", "b", ""]);
  assert.equal(answers[3]?.error?.name, "NotFound"); // gone meanwhile: an error, sent in its place
  assert.equal(answers[4]?.done, true); // the end of the walk
  handle({ stop: true });
  handle({ credit: [4, 4], generation: 1 });
  assert.equal(answers.length, 5);
  Deno.removeSync(root, { recursive: true });
});

Deno.test("lister: a folder it will not read is the caller's; another root is not its own", async () => {
  const root = Deno.makeTempDirSync();
  Deno.mkdirSync(`${root}/a/b`, { recursive: true });
  const lister = new FolderLister();
  lister.start(root, ["a"]);
  assert.equal(lister.take(`${root}/a`, "a"), undefined);
  assert.equal(lister.take(root, "zzz"), undefined); // not a folder the worker found
  assert.equal((await lister.take(root, "a"))?.names, "b\0");
  assert.equal((await lister.take(root, "a/b"))?.names, "");
  lister.close();
  assert.equal(lister.take(root, "a"), undefined); // closed: every folder is the caller's
  Deno.removeSync(root, { recursive: true });
});

Deno.test("lister: a broken worker leaves every folder to the caller, and the tree still lists", async () => {
  const root = Deno.makeTempDirSync();
  Deno.mkdirSync(`${root}/a/b`, { recursive: true });
  Deno.writeTextFileSync(`${root}/a/b/f`, "f");
  const broken = "throw new Error('broken worker')";
  const lister = new FolderLister(broken);
  lister.start(root, ["a"]);
  const ahead = lister.take(root, "a");
  if (ahead) await assert.rejects(ahead, ListerGone);
  lister.close();

  const tree = new LocalTree(root, { aheadSource: broken });
  assert.ok(tree.open());
  tree.readAhead();
  const names = async (dir: string) => (await tree.list(dir)).entries.map((e) => e.name);
  assert.deepEqual(await names(""), ["a"]);
  assert.deepEqual(await names("a"), ["b"]);
  assert.deepEqual(await names("a/b"), ["f"]);
  tree.close();
  Deno.removeSync(root, { recursive: true });
});

Deno.test("lister: a tree read ahead lists what it lists without, and a new cycle reads afresh", async () => {
  const root = Deno.makeTempDirSync();
  Deno.mkdirSync(`${root}/a/b`, { recursive: true });
  const tree = new LocalTree(root);
  const names = async (dir: string) => (await tree.list(dir)).entries.map((e) => e.name);
  assert.ok(tree.open());
  tree.readAhead();
  assert.deepEqual(await names(""), ["a"]);
  assert.deepEqual(await names("a"), ["b"]);
  // Changed after the worker read it: the next cycle (open) sees the change.
  Deno.writeTextFileSync(`${root}/a/b/new`, "n");
  assert.ok(tree.open());
  tree.readAhead();
  assert.deepEqual(await names(""), ["a"]);
  assert.deepEqual(await names("a"), ["b"]);
  assert.deepEqual(await names("a/b"), ["new"]);
  tree.close();
  Deno.removeSync(root, { recursive: true });
});

Deno.test("lister: the worker's walk leaves out the folders the mirror's walk will not list", () => {
  const root = Deno.makeTempDirSync();
  for (const dir of ["a/x/deep", "a/y", "b/z"]) {
    Deno.mkdirSync(`${root}/${dir}`, { recursive: true });
  }
  const answers: AheadAnswer[] = [];
  const handle = walkAhead((answer) => answers.push(answer), { folders: 1, entries: 100 });
  handle({ start: root, dirs: ["a", "b"], generation: 1 });
  assert.deepEqual(answers.map((a) => a.dir), ["a"]);
  handle({ skip: ["a/x", "b"], generation: 1 }); // a/x was already queued: left out all the same
  handle({ credit: [1, 2], generation: 1 });
  handle({ credit: [1, 0], generation: 1 });
  assert.deepEqual(answers.map((a) => a.dir), ["a", "a/y", ""]);
  Deno.removeSync(root, { recursive: true });
});

Deno.test("lister: folders taken out of the walk's order never hang the walk", async () => {
  const root = Deno.makeTempDirSync();
  for (const dir of ["a/s", "b/t", "c"]) Deno.mkdirSync(`${root}/${dir}`, { recursive: true });
  const lister = new FolderLister();
  try {
    // A survey reads b before the walk takes a: skipped, b is the caller's.
    lister.start(root, ["a", "b", "c"]);
    lister.skip(root, ["b"]);
    assert.equal(lister.take(root, "b"), undefined);
    assert.equal(lister.take(root, "b/t"), undefined);
    assert.equal((await lister.take(root, "a"))?.names, "s\0");
    assert.equal((await lister.take(root, "a/s"))?.names, "");
    assert.equal((await lister.take(root, "c"))?.names, "");

    // Without the skip: taking c first drops a and b; a, asked later, is the
    // caller's (the worker is past it), not a wait that never ends.
    lister.start(root, ["a", "b", "c"]);
    assert.equal((await lister.take(root, "c"))?.names, "");
    const late = lister.take(root, "a");
    if (late !== undefined) await assert.rejects(late, ListerGone);
  } finally {
    lister.close();
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("lister: walks that survey some folders first (out of order) and skip others never hang and always list right", async () => {
  await fc.assert(
    fc.asyncProperty(
      worldArb().chain((world) => {
        const dirs = [...world.tree].filter(([, e]) => e.kind === "dir").map(([p]) => p);
        return fc.tuple(fc.constant(world), fc.subarray(dirs), fc.subarray(dirs));
      }),
      async ([world, surveyedList, skippedList]) => {
        const root = materialize(world);
        const lister = new FolderLister();
        const surveyed = new Set(surveyedList), skipped = new Set(skippedList);
        // A take that never settles fails the property instead of hanging it.
        const settle = async <T>(promise: Promise<T>): Promise<T> => {
          let timer: ReturnType<typeof setTimeout> | undefined;
          const late = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error("a take hung")), 5_000);
          });
          try {
            return await Promise.race([promise, late]);
          } finally {
            clearTimeout(timer);
          }
        };
        const list = async (dir: string) => {
          const base = `${root}/${dir}`;
          const ahead = lister.take(root, dir);
          if (ahead === undefined) return listingOf(readFolder(base));
          try {
            return listingOf(await settle(ahead));
          } catch (error) {
            if (error instanceof ListerGone) return listingOf(readFolder(base));
            throw error;
          }
        };
        const survey = async (dir: string): Promise<void> => {
          const listing = await list(dir);
          assert.deepEqual(listing, listingOf(readFolder(`${root}/${dir}`)));
          for (const { name, entry } of listing.entries) {
            if (entry.kind === "dir") await survey(`${dir}/${name}`);
          }
        };
        const walk = async (dir: string, listing: ReturnType<typeof listingOf>) => {
          assert.deepEqual(listing, listingOf(readFolder(dir === "" ? root : `${root}/${dir}`)));
          const children = listing.entries.filter(({ entry }) => entry.kind === "dir")
            .map(({ name }) => dir === "" ? name : `${dir}/${name}`);
          // As the march: replica-only folders are surveyed first, out of order...
          const first = children.filter((path) => surveyed.has(path));
          if (first.length > 0) lister.skip(root, first);
          for (const path of first) await survey(path);
          // ...then the walk goes down the others in order, leaving some out.
          const rest = children.filter((path) => !surveyed.has(path) && !skipped.has(path));
          lister.skip(root, children.filter((path) => skipped.has(path) && !surveyed.has(path)));
          for (const path of rest) await walk(path, await list(path));
        };
        try {
          const top = readFolder(root);
          lister.start(root, subfoldersOf(top));
          await walk("", listingOf(top));
        } finally {
          lister.close();
          Deno.removeSync(root, { recursive: true });
        }
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("lister: a folder's names come in the walk's order, whatever units they hold (the runtime's sort where it agrees)", () => {
  // Units around the places where UTF-16 order and code point order part: surrogates
  // (characters above U+FFFF) against U+E000-U+FFFF, and `/`'s neighbours.
  const unit = fc.constantFrom(
    "a",
    "b",
    "-",
    ".",
    "0",
    "\uE000",
    "\uFFFD",
    "\u{1F600}",
    "\u{10000}",
    "é",
    "~",
  );
  const name = fc.array(unit, { minLength: 1, maxLength: 4 }).map((units) => units.join(""));
  fc.assert(
    fc.property(fc.uniqueArray(name, { maxLength: 12 }), (names) => {
      assert.deepEqual(sortNames([...names]), [...names].sort(comparePaths));
    }),
    { numRuns: 300 },
  );
  // On disk: a folder read on this thread (the worker runs the same `readFolder`), in that order.
  const root = Deno.makeTempDirSync({ prefix: "lister-" });
  try {
    const names = ["z", "\uFFFD", "\u{1F600}", "\uE000x", "a b", "a"];
    for (const name of names) Deno.writeTextFileSync(`${root}/${name}`, "");
    const listed = listingOf(readFolder(root)).entries.map((entry) => entry.name);
    assert.deepEqual(listed, [...names].sort(comparePaths));
    assert.deepEqual(listed.at(-1), "\u{1F600}");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("lister: the worker stays unused for the time it is given, then stops", async () => {
  const root = Deno.makeTempDirSync({ prefix: "lister-" });
  Deno.mkdirSync(`${root}/a`);
  const lister = new FolderLister(undefined, 400);
  try {
    lister.start(root, ["a"]);
    assert.equal((await lister.take(root, "a"))?.names, "");
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.ok(lister.running, "stopped before its time");
    await new Promise((resolve) => setTimeout(resolve, 700));
    assert.ok(!lister.running, "still running after its time");
  } finally {
    lister.close();
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("lister: a linger of weeks (a --time-interval that long) waits in timers the runtime can take, not in a loop of them", async () => {
  const root = Deno.makeTempDirSync({ prefix: "lister-" });
  Deno.mkdirSync(`${root}/a`);
  const delays: number[] = [];
  const real = globalThis.setTimeout;
  globalThis.setTimeout = ((handler: () => void, ms?: number) => {
    delays.push(ms ?? 0);
    return real(handler, ms);
  }) as typeof setTimeout;
  const lister = new FolderLister(undefined, 40 * 24 * 3600 * 1000); // 40 days
  try {
    lister.start(root, ["a"]);
    assert.equal((await lister.take(root, "a"))?.names, "");
    await new Promise((resolve) => real(resolve, 200));
    assert.ok(lister.running);
    // A delay above 2^31 - 1 ms wraps round and fires at once: the timer would spin.
    assert.ok(delays.length < 5, `${delays.length} timers in 200 ms`);
    assert.ok(delays.every((ms) => ms <= 2 ** 31 - 1), String(delays));
  } finally {
    globalThis.setTimeout = real;
    lister.close();
    Deno.removeSync(root, { recursive: true });
  }
});

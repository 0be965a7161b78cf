/**
 * The randomized `--watch` test (#19): random sequences of creates, edits,
 * removals and renames of files and folders, hard links made and left, at random depths are made in the
 * source of a running mirror whose full cycles are an hour apart; once the
 * events settle, the replica must equal the source. The test suite runs a few
 * dozen cases; for more:
 *
 * `deno run --allow-read --allow-write --allow-run tests/watch_fuzz.ts 200`
 *
 * @module
 */
import fc from "npm:fast-check@^4.11.0";
import { mirrorDiff, mirrored, waitFor } from "./helpers.ts";
import { watchingLoop } from "./watching.ts";

/** A path at depth 1 to 4 over a few names, so that operations meet. */
const pathArb = fc.array(fc.constantFrom("a", "b", "c"), { minLength: 1, maxLength: 4 })
  .map((names) => names.join("/"));

/** One change to the source. */
export type Op =
  | { readonly op: "write"; readonly path: string; readonly text: string }
  | { readonly op: "mkdir"; readonly path: string }
  | { readonly op: "remove"; readonly path: string }
  | { readonly op: "rename"; readonly from: string; readonly to: string }
  /** A hard link: `to` another name of the file `from`. */
  | { readonly op: "link"; readonly from: string; readonly to: string }
  /** The file written anew as a file of its own (same bytes, a new inode: it leaves its group). */
  | { readonly op: "rewrite"; readonly path: string };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    op: fc.constant("write" as const),
    path: pathArb,
    text: fc.string({ maxLength: 12 }),
  }),
  fc.record({ op: fc.constant("mkdir" as const), path: pathArb }),
  fc.record({ op: fc.constant("remove" as const), path: pathArb }),
  fc.record({ op: fc.constant("rename" as const), from: pathArb, to: pathArb }),
  fc.record({ op: fc.constant("link" as const), from: pathArb, to: pathArb }),
  fc.record({ op: fc.constant("rewrite" as const), path: pathArb }),
);

/** A first tree and the changes made to it while the mirror runs. */
export const scenarioArb: fc.Arbitrary<{ before: Op[]; during: Op[] }> = fc.record({
  before: fc.array(opArb, { minLength: 4, maxLength: 16 }),
  during: fc.array(opArb, { minLength: 1, maxLength: 25 }),
});

/** Make `op` in `root` where it makes sense (an op that cannot be made is skipped). */
function apply(root: string, op: Op): void {
  const at = (path: string) => `${root}/${path}`;
  const kind = (path: string) => {
    try {
      return Deno.lstatSync(at(path)).isDirectory ? "dir" : "file";
    } catch {
      return undefined;
    }
  };
  const parentOk = (path: string) => {
    const parent = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
    return parent === "" || kind(parent) === "dir" || (mkdirs(parent), kind(parent) === "dir");
  };
  const mkdirs = (path: string) => {
    try {
      Deno.mkdirSync(at(path), { recursive: true });
    } catch {
      // a file in the way: the op is skipped
    }
  };
  switch (op.op) {
    case "write":
      if (kind(op.path) === "dir" || !parentOk(op.path)) return;
      Deno.writeTextFileSync(at(op.path), op.text);
      return;
    case "mkdir":
      if (kind(op.path) === undefined) mkdirs(op.path);
      return;
    case "remove":
      if (kind(op.path) !== undefined) Deno.removeSync(at(op.path), { recursive: true });
      return;
    case "rename": {
      if (kind(op.from) === undefined || op.from === op.to) return;
      if (op.to.startsWith(`${op.from}/`) || kind(op.to) !== undefined) return;
      if (!parentOk(op.to) || kind(op.from) === undefined) return;
      Deno.renameSync(at(op.from), at(op.to));
      return;
    }
    case "link":
      if (kind(op.from) !== "file" || kind(op.to) !== undefined || !parentOk(op.to)) return;
      Deno.linkSync(at(op.from), at(op.to));
      return;
    case "rewrite": {
      if (kind(op.path) !== "file") return;
      const bytes = Deno.readFileSync(at(op.path));
      Deno.removeSync(at(op.path));
      Deno.writeFileSync(at(op.path), bytes);
      return;
    }
  }
}

/**
 * Run one scenario: make the first tree, start a watching mirror (full cycles
 * an hour apart), wait for its first cycle, make the changes, and wait until
 * the replica mirrors the source (at most `settleMs`).
 *
 * @returns undefined when the replica converged, else what differs.
 */
export async function runScenario(
  scenario: { before: readonly Op[]; during: readonly Op[] },
  settleMs = 5_000,
): Promise<string | undefined> {
  const work = Deno.realPathSync(Deno.makeTempDirSync({ prefix: "mirror-fuzz-" }));
  const roots = { source: `${work}/src`, replica: `${work}/rep` };
  Deno.mkdirSync(roots.source);
  for (const op of scenario.before) apply(roots.source, op);
  const quiet = { debug() {}, info() {}, warn() {}, error() {}, isEnabledFor: () => false };
  const loop = watchingLoop(work, { log: quiet, intervalMs: 3_600_000 });
  try {
    await waitFor("the first cycle", mirrored(work), 10_000, 20);
    await new Promise((resolve) => setTimeout(resolve, 100)); // every folder watched
    for (const op of scenario.during) apply(roots.source, op);
    try {
      await waitFor("convergence", mirrored(work), settleMs, 20);
      return undefined;
    } catch {
      return mirrorDiff(roots.source, roots.replica).join("\n");
    }
  } finally {
    await loop.stop();
    Deno.removeSync(work, { recursive: true });
  }
}

/**
 * Check `runs` random scenarios (fast-check shrinks a failing one).
 *
 * @param runs how many.
 * @param seed the random seed (default: fast-check's).
 */
export async function fuzzWatch(runs: number, seed?: number): Promise<void> {
  await fc.assert(
    fc.asyncProperty(scenarioArb, async (scenario) => {
      const diff = await runScenario(scenario);
      if (diff !== undefined) throw new Error(`the replica differs:\n${diff}`);
    }),
    { numRuns: runs, endOnFailure: true, ...(seed === undefined ? {} : { seed }) },
  );
}

if (import.meta.main) {
  const runs = Number(Deno.args[0] ?? 200);
  await fuzzWatch(runs);
  console.log(`${runs} random --watch scenarios: the replica converged every time`);
  Deno.exit(0);
}

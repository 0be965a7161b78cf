/**
 * Benchmark: folder-mirror against `rsync -a --delete` on the same data, in
 * the same run, alternating, several rounds. Prints medians, the median of
 * the pairwise ratios (tool / rsync) and the tool's peak RSS. One row is not
 * the tool: the floor, a bare Deno walk of both trees (`floor.ts`), the least
 * any Deno mirror's unchanged cycle costs here, on one thread and on two (the
 * main thread walks one tree, a worker the other). One row times the default,
 * continuous mode: a cycle after the first, in one process; one the CPU of an
 * idle cycle of a running mirror (`--time-interval`, CPU from `/proc/PID/stat`
 * between the ends of cycles, as the status file tells them). The start-up
 * row: `--once` on an empty tree against an empty Deno script.
 *
 * The column "vs 2-thread floor" is the tool's median against the median of
 * the two-thread floor of its tree in the same run: for a `--once` row,
 * (time - the start-up row's time) / floor; for continuous mode and the
 * one-thread floor, time / floor; for the idle cycle, CPU / the floor's CPU
 * (GNU time's user + sys).
 *
 * Needs: rsync and GNU time (`apt-get install rsync time`).
 *
 * `deno task bench [--rounds N] [--files N] [--quick] [--dir PATH]`
 *   --rounds N  rounds per scenario (default 5; at most 3 on the big tree, 1 for
 *               its initial mirror from 500,000 files on)
 *   --files N   files of the big tree (~256 B each, 100 a folder; default 100,000;
 *               the issue's million: `--files 1000000`, ~4 GB per copy, three copies)
 *   --quick     tiny trees, for checking that the script works
 *   --dir PATH  where to build the trees (default: a new temp folder, removed after)
 *   --no-s3     leave out the S3 rows (against rclone, on a Ceph cluster started for
 *               them: needs ceph-mon ceph-osd ceph-common radosgw rclone)
 *   --only LIST the groups of rows to run, comma-separated: small (start-up, initial,
 *               unchanged, floors, continuous, idle cycle, 1% changed), large, huge
 *               (with the big tree's two-thread floor), rename, watch, s3, ssh, floor
 *               (start-up and the floors of both trees alone: quick to run again)
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  buildTree,
  type Compared,
  compareRounds,
  median,
  percentile,
  printTable,
  processCpu,
  rand,
  randomBytes,
  type Row,
  type Run,
  timed,
} from "./common.ts";
import { benchS3, s3BenchMissing } from "./s3.ts";
import { benchSftp, sftpBenchMissing } from "./sftp.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "5" },
    files: { type: "string" },
    quick: { type: "boolean", default: false },
    dir: { type: "string" },
    "no-s3": { type: "boolean", default: false },
    only: { type: "string" },
  },
});
const GROUPS = ["small", "large", "huge", "rename", "watch", "s3", "ssh", "floor"];
const only = flags.only?.split(",");
for (const group of only ?? []) {
  if (!GROUPS.includes(group)) {
    console.error(`--only: one or more of ${GROUPS.join(", ")}`);
    Deno.exit(2);
  }
}
/** Whether the rows of `group` are run. */
const runs = (group: string) => only === undefined || only.includes(group);
const ROUNDS = Math.max(1, Number(flags.rounds));
const QUICK = flags.quick;
const SIZES = QUICK
  ? { small: 400, smallDirs: 8, large: 3, largeBytes: 1 << 20, huge: 1_000, hugeDirs: 10 }
  : {
    small: 20_000,
    smallDirs: 200,
    large: 20,
    largeBytes: 50 << 20,
    huge: 100_000,
    hugeDirs: 1_000,
  };
if (flags.files !== undefined) {
  const files = Number(flags.files);
  if (!Number.isInteger(files) || files < 100) {
    console.error("--files: a whole number of files, at least 100");
    Deno.exit(2);
  }
  SIZES.huge = files;
  SIZES.hugeDirs = Math.max(1, Math.round(files / 100));
}
/** The memory targets of the big tree's rows (issue 22's, by size): unchanged, initial. */
const HUGE_RSS = SIZES.huge >= 1_000_000
  ? { unchanged: "RSS <= 256 MiB", initial: ", RSS <= 384 MiB" }
  : { unchanged: "RSS <= 128 MiB", initial: "" };

for (const tool of ["rsync", "/usr/bin/time"]) {
  try {
    new Deno.Command(tool, { args: ["--version"], stdout: "null", stderr: "null" }).outputSync();
  } catch {
    console.error(`bench needs ${tool}: apt-get install rsync time`);
    Deno.exit(2);
  }
}

const base = flags.dir ?? Deno.makeTempDirSync({ prefix: "mirror-bench-" });
Deno.mkdirSync(base, { recursive: true });
let fresh = 0;
/** A new, never used folder name (ext4 creates slowly where much was just deleted). */
const freshPath = (label: string) => `${base}/${label}-${fresh++}`;

// ---------------------------------------------------------------- data

function buildLarge(root: string): void {
  Deno.mkdirSync(root, { recursive: true });
  for (let i = 0; i < SIZES.large; i++) {
    Deno.writeFileSync(`${root}/big${i}.bin`, randomBytes(SIZES.largeBytes));
  }
}

// ---------------------------------------------------------------- running

/** The program's command line, as users run it, on `source` -> `replica`
 * (a log file, and so a state file, of each replica's own, beside it). */
function mirrorArgs(source: string, replica: string, ...extra: string[]): string[] {
  const log = `${replica}.log`;
  return ["run", "--allow-read", "--allow-write", "--no-prompt", MAIN]
    .concat(["--source", source, "--replica", replica, "--log-file", log, ...extra]);
}

function mirror(source: string, replica: string): Run {
  return timed(Deno.execPath(), mirrorArgs(source, replica, "--once"));
}

function rsync(source: string, replica: string): Run {
  return timed("rsync", ["-a", "--delete", `${source}/`, `${replica}/`]);
}

const rows: Row[] = [];

/** Alternate tool and rsync for ROUNDS rounds; `round` sets up each pair. */
function compare(
  scenario: string,
  target: string,
  round: (i: number) => { tool: () => Run | Promise<Run>; rsync: () => Run },
  rounds = ROUNDS,
): Promise<Compared> {
  return compareRounds(rows, scenario, target, (i) => {
    const pair = round(i);
    return { tool: pair.tool, other: pair.rsync };
  }, rounds);
}

// ---------------------------------------------------------------- floors

const FLOOR = new URL("./floor.ts", import.meta.url).pathname;

/** A bare walk of `trees` (`floor.ts`) on `threads` threads. */
function floor(threads: number, ...trees: string[]): Run {
  const args = threads === 1 ? trees : ["--threads", `${threads}`, ...trees];
  return timed(Deno.execPath(), ["run", "--allow-read", "--no-prompt", FLOOR, ...args]);
}

/** The trees: the small one (SIZES.small files) and the big one (SIZES.huge). */
type Tree = "small" | "huge";
/** The two-thread floor of each tree, as measured in this run. */
const floors: Partial<Record<Tree, Compared>> = {};
/** The start-up row's median (s): `--once` on an empty tree. */
let startup: number | undefined;
/** Fill the "vs 2-thread floor" cells once every floor is known. */
const floorCells: (() => void)[] = [];

/**
 * Report `compared` against the two-thread floor of `tree`: less start-up if
 * `once` (a whole run of the program).
 */
function versusFloor(compared: Compared, tree: Tree, once = true): void {
  floorCells.push(() => {
    const floor = floors[tree]?.tool;
    compared.row.floor = floor === undefined || (once && startup === undefined)
      ? "n/a"
      : `${((compared.tool - (once ? startup! : 0)) / floor).toFixed(2)} x`;
  });
}

/**
 * The floor rows of `source` and its copy `replica` (against rsync to
 * `rsyncReplica`, unchanged): two threads, and first one thread if `oneThread`.
 * The two-thread floor's medians are kept for `tree`.
 */
async function floorRows(
  tree: Tree,
  source: string,
  replica: string,
  rsyncReplica: string,
  rounds: number,
  oneThread: boolean,
): Promise<void> {
  const files = tree === "small" ? SIZES.small : SIZES.huge;
  const one = oneThread
    ? await compare(`floor: bare Deno walk of both ${files}-file trees (no mirror)`, "", () => ({
      tool: () => floor(1, source, replica),
      rsync: () => rsync(source, rsyncReplica),
    }), rounds)
    : undefined;
  const two = await compare(
    `floor: both ${files}-file trees walked on two threads (main + one worker, no mirror)`,
    "",
    () => ({ tool: () => floor(2, source, replica), rsync: () => rsync(source, rsyncReplica) }),
    rounds,
  );
  if (one !== undefined) versusFloor(one, tree, false);
  two.row.floor = two.toolCpu === undefined ? "" : `CPU ${two.toolCpu.toFixed(3)} s`;
  floors[tree] = two;
}

// ---------------------------------------------------------------- scenarios

console.error(`building trees in ${base} ...`);
const small = `${base}/small-src`;
const smallFiles = buildTree(small, SIZES.small, SIZES.smallDirs, 4096);
const large = `${base}/large-src`;
if (runs("large")) buildLarge(large);

if (runs("small") || runs("huge") || runs("floor")) {
  console.error("start-up: --once on an empty tree, against an empty Deno script");
  const source = `${base}/empty-src`, replica = freshPath("t-empty"), script = `${base}/empty.ts`;
  Deno.mkdirSync(source);
  Deno.writeTextFileSync(script, "");
  const empty = () =>
    timed(Deno.execPath(), ["run", "--allow-read", "--allow-write", "--no-prompt", script]);
  // Once each first: the replica and its state made, both scripts compiled and cached.
  mirror(source, replica);
  empty();
  const compared = await compare(
    "start-up: --once on an empty tree (and empty replica), against an empty Deno script",
    "<= +25 ms",
    () => ({ tool: () => mirror(source, replica), rsync: empty }),
  );
  startup = compared.tool;
  compared.row.rsync = `${compared.other.toFixed(3)} s (empty script)`;
  const above = (compared.tool - compared.other) * 1000;
  compared.row.ratio = `${above < 0 ? "" : "+"}${above.toFixed(0)} ms`;
}

if (runs("small")) {
  console.error("initial mirror, small files");
  versusFloor(
    await compare(`initial mirror, ${SIZES.small} files of ~4 KiB`, "<= 1.0 x", () => {
      const t = freshPath("t-init"), r = freshPath("r-init");
      return { tool: () => mirror(small, t), rsync: () => rsync(small, r) };
    }),
    "small",
  );
}

if (runs("large")) {
  console.error("initial mirror, large files");
  await compare(
    `initial mirror, ${SIZES.large} files of ${SIZES.largeBytes >> 20} MiB`,
    "<= 0.3 x",
    () => {
      const t = freshPath("t-large"), r = freshPath("r-large");
      return {
        tool: () => {
          const run = mirror(large, t);
          Deno.removeSync(t, { recursive: true });
          return run;
        },
        rsync: () => {
          const run = rsync(large, r);
          Deno.removeSync(r, { recursive: true });
          return run;
        },
      };
    },
  );
}

if (runs("small")) {
  console.error("first cycle after an initial mirror");
  versusFloor(
    await compare(
      `first cycle after an initial mirror, ${SIZES.small} files`,
      "<= 1.0 x; floor <= 1.3 x",
      () => {
        const t = freshPath("t-after"), r = freshPath("r-after");
        mirror(small, t);
        rsync(small, r);
        return { tool: () => mirror(small, t), rsync: () => rsync(small, r) };
      },
    ),
    "small",
  );

  const toolReplica = freshPath("t-sync"), rsyncReplica = freshPath("r-sync");
  mirror(small, toolReplica);
  rsync(small, rsyncReplica);

  console.error("unchanged cycle");
  const unchanged = await compare(
    `unchanged cycle, ${SIZES.small} files`,
    "<= 1.0 x; floor <= 1.15 x",
    () => ({
      tool: () => mirror(small, toolReplica),
      rsync: () => rsync(small, rsyncReplica),
    }),
  );
  versusFloor(unchanged, "small");

  console.error("floors: a bare Deno walk of both trees, on one thread and on two");
  await floorRows("small", small, toolReplica, rsyncReplica, ROUNDS, true);

  console.error("unchanged cycle, continuous mode");
  {
    // The default mode: one process, cycle after cycle, so start-up and
    // loading the state are paid once. Timed in this process, on a Mirror made
    // as main.ts makes it (its log goes nowhere); peak RSS is not measured here.
    const { LocalReplica, LocalTree, Mirror, MirrorState } = await import("../mod.ts");
    const roots = { source: Deno.realPathSync(small), replica: Deno.realPathSync(toolReplica) };
    const { state } = await MirrorState.open(`${toolReplica}.log.state`, roots);
    const mirror = new Mirror(
      new LocalTree(roots.source),
      new LocalReplica(roots.replica, { names: state }),
      { state },
    );
    await mirror.cycle();
    const continuous = await compare(
      `unchanged cycle, continuous mode (each cycle after the first), ${SIZES.small} files`,
      "<= 0.5 x",
      () => ({
        tool: async () => {
          const started = performance.now();
          await mirror.cycle();
          return { seconds: (performance.now() - started) / 1000, rssMiB: 0 };
        },
        rsync: () => rsync(small, rsyncReplica),
      }),
    );
    continuous.row.rss = "";
    versusFloor(continuous, "small", false);
    state.close();
  }

  console.error("idle cycle of a running mirror");
  {
    // The program as users run it, every INTERVAL s; its CPU (all threads)
    // between the ends of two cycles (as its status file counts them), after
    // two cycles to settle. Longer than a second, as the default (10 s) is:
    // what stays between cycles must stay that long.
    const interval = QUICK ? 0.2 : 2, settle = 2;
    const status = `${toolReplica}.status.json`;
    const child = new Deno.Command(Deno.execPath(), {
      args: mirrorArgs(
        small,
        toolReplica,
        "--time-interval",
        `${interval}`,
        "--status-file",
        status,
      ),
      stdout: "null",
      stderr: "null",
    }).spawn();
    let exited = false;
    child.status.then(() => exited = true);
    const cycles = () => {
      try {
        return (JSON.parse(Deno.readTextFileSync(status)) as { cycles: { full: number } }).cycles
          .full;
      } catch {
        return 0; // not written yet
      }
    };
    /** The child's CPU seconds once it has ended `count` full cycles. */
    const cpuAfter = async (count: number) => {
      const started = performance.now();
      while (cycles() < count) {
        if (exited) throw new Error("the running mirror ended");
        if (performance.now() - started > 60_000) throw new Error("no cycle within 60 s");
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return processCpu(child.pid);
    };
    const perCycle: number[] = [];
    let last = await cpuAfter(settle);
    for (let i = 1; i <= ROUNDS; i++) {
      const now = await cpuAfter(settle + i);
      perCycle.push(now - last);
      last = now;
    }
    child.kill("SIGINT");
    await child.status;
    const cpu = median(perCycle), rsyncCpu = unchanged.otherCpu!, floorCpu = floors.small!.toolCpu!;
    rows.push({
      scenario:
        `idle cycle of a running mirror (--time-interval ${interval} --status-file, unchanged): CPU ` +
        `(user + sys) a cycle, against a whole rsync run's, ${SIZES.small} files`,
      tool: `${cpu.toFixed(3)} s CPU`,
      rsync: `${rsyncCpu.toFixed(3)} s CPU`,
      ratio: rsyncCpu > 0 ? `${(cpu / rsyncCpu).toFixed(2)} x` : "n/a", // (10 ms ticks)
      floor: `${(cpu / floorCpu).toFixed(2)} x (CPU)`,
      target: "floor CPU <= 1.0 x",
      rss: "",
    });
    console.error(`  ${cpu.toFixed(3)} s CPU a cycle vs the floor's ${floorCpu.toFixed(3)} s`);
  }

  console.error("1% changed");
  versusFloor(
    await compare(`1% changed, ${SIZES.small} files`, "<= 1.0 x; floor <= 1.3 x", () => {
      for (let i = 0; i < SIZES.small / 100; i++) {
        const path = `${small}/${smallFiles[rand(smallFiles.length)]}`;
        const size = rand(2) ? Deno.statSync(path).size : rand(8193);
        Deno.writeFileSync(path, randomBytes(size));
      }
      return { tool: () => mirror(small, toolReplica), rsync: () => rsync(small, rsyncReplica) };
    }),
    "small",
  );
} else if (runs("floor")) {
  console.error("floors of the small tree");
  const copy = freshPath("r-floor");
  rsync(small, copy);
  await floorRows("small", small, copy, copy, ROUNDS, true);
}

const huge = `${base}/huge-src`;
/** Build the big tree, settled (its files' times in an earlier second: copies are recorded). */
async function buildHuge(): Promise<void> {
  buildTree(huge, SIZES.huge, SIZES.hugeDirs, 256);
  await new Promise((resolve) => setTimeout(resolve, 1100));
}

if (runs("huge")) {
  console.error(`big tree: ${SIZES.huge} files`);
  await buildHuge();
  const hugeTool = freshPath("t-huge"), hugeRsync = freshPath("r-huge");
  const hugeTarget = `<= 1.0 x${HUGE_RSS.initial}`;
  const hugeRounds = Math.min(ROUNDS, 3);
  await compare(`initial mirror, ${SIZES.huge} files of ~256 B`, hugeTarget, (i) => {
    // The first round's copies stay: the unchanged rows below use them.
    const t = i === 0 ? hugeTool : freshPath("t-huge"),
      r = i === 0 ? hugeRsync : freshPath("r-huge");
    return { tool: () => mirror(huge, t), rsync: () => rsync(huge, r) };
  }, SIZES.huge >= 500_000 ? 1 : hugeRounds);
  await floorRows("huge", huge, hugeTool, hugeRsync, hugeRounds, false);
  versusFloor(
    await compare(
      `unchanged cycle, ${SIZES.huge} files`,
      `<= 1.0 x, ${HUGE_RSS.unchanged}; floor <= 1.15 x`,
      () => ({
        tool: () => mirror(huge, hugeTool),
        rsync: () => rsync(huge, hugeRsync),
      }),
      hugeRounds,
    ),
    "huge",
  );
  {
    const bytes = Deno.statSync(`${hugeTool}.log.state`).size;
    rows.push({
      scenario: `state file (the compact index on disk), ${SIZES.huge} files`,
      tool: `${(bytes / SIZES.huge).toFixed(1)} B an entry`,
      rsync: "",
      ratio: "",
      target: "",
      rss: "",
    });
  }
}

if (runs("floor") && !runs("huge")) {
  console.error(`floor of the big tree: ${SIZES.huge} files`);
  await buildHuge();
  const copy = freshPath("r-floor-huge");
  rsync(huge, copy);
  await floorRows("huge", huge, copy, copy, Math.min(ROUNDS, 3), false);
}

if (runs("rename")) {
  console.error("folder rename");
  {
    // A folder of photos renamed in the source: the next run of each tool.
    const count = QUICK ? 50 : 1_000, bytes = QUICK ? 64 << 10 : Math.floor((1 << 30) / count);
    const source = `${base}/rename-src`;
    Deno.mkdirSync(`${source}/photos-0`, { recursive: true });
    for (let i = 0; i < count; i++) {
      Deno.writeFileSync(`${source}/photos-0/p${i}.jpg`, randomBytes(bytes));
    }
    const tool = freshPath("t-rename"), other = freshPath("r-rename");
    await new Promise((resolve) => setTimeout(resolve, 1100)); // settled: copies are recorded
    mirror(source, tool);
    rsync(source, other);
    await new Promise((resolve) => setTimeout(resolve, 1100)); // renames in a later second
    let name = 0;
    const size = QUICK ? `${count * bytes >> 20} MiB` : "1 GiB";
    await compare(
      `rename of a folder of ${size} (${count} files): the next --once run`,
      "<= 0.05 x",
      () => {
        Deno.renameSync(`${source}/photos-${name}`, `${source}/photos-${name + 1}`);
        name++;
        return { tool: () => mirror(source, tool), rsync: () => rsync(source, other) };
      },
    );
    Deno.removeSync(source, { recursive: true });
    Deno.removeSync(tool, { recursive: true });
    Deno.removeSync(other, { recursive: true });
  }
}

/** A mirror of `source` in `--watch` mode (full cycles 10 minutes apart), its first cycle done. */
async function watching(source: string, replica: string) {
  mirror(source, replica);
  // Under GNU time, for the peak RSS (reading /proc would need --allow-all).
  const child = new Deno.Command("/usr/bin/time", {
    args: [
      "-f",
      "@@rss %M",
      Deno.execPath(),
      ...mirrorArgs(source, replica, "--time-interval", "600", "--watch"),
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  await new Promise((resolve) => setTimeout(resolve, 3000)); // its first full cycle
  return {
    /** Stop it (SIGINT to the mirror itself: time ignores it); its peak RSS (MiB). */
    async stop(): Promise<number> {
      new Deno.Command("pkill", { args: ["-INT", "-P", `${child.pid}`] }).outputSync();
      const stderr = new TextDecoder().decode((await output).stderr);
      return Number(stderr.match(/@@rss (\d+)/)?.[1] ?? 0) / 1024;
    },
  };
}

if (runs("watch")) {
  console.error("watch mode latency");
  {
    const probes = QUICK ? 10 : 40;
    const deep = "watch-latency/three/deep";
    Deno.mkdirSync(`${small}/${deep}`, { recursive: true });
    const replica = freshPath("t-watch");
    const watcher = await watching(small, replica);
    const latencies: number[] = [];
    for (let i = 0; i < probes; i++) {
      const bytes = randomBytes(4096);
      const path = `${deep}/w${i}.bin`;
      const started = performance.now();
      Deno.writeFileSync(`${small}/${path}`, bytes);
      for (;;) {
        try {
          const got = Deno.readFileSync(`${replica}/${path}`);
          if (got.length === bytes.length && got.every((b, j) => b === bytes[j])) break;
        } catch {
          // not there yet
        }
        if (performance.now() - started > 10_000) throw new Error(`watch mode missed ${path}`);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      latencies.push(performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await watcher.stop();
    const p50 = percentile(latencies, 50), p95 = percentile(latencies, 95);
    rows.push({
      scenario:
        `watch mode: a new 4 KiB file three folders deep -> replica holds it (${SIZES.small} files watched)`,
      tool: `p50 ${p50.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms`,
      rsync: "n/a",
      ratio: "",
      target: "p95 <= 20 ms",
      rss: "",
    });
    console.error(`  p50 ${p50.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms`);
  }

  console.error("watch mode burst");
  {
    // Thousands of creates across dozens of folders, a quarter removed, a few
    // folders renamed, as fast as this process can make them (within a second).
    const folders = QUICK ? 8 : 40, each = 100, renamed = 4;
    const replica = freshPath("t-burst");
    const watcher = await watching(small, replica);
    const started = performance.now();
    for (let d = 0; d < folders; d++) {
      Deno.mkdirSync(`${small}/burst/d${d}`, { recursive: true });
      for (let f = 0; f < each; f++) {
        Deno.writeFileSync(`${small}/burst/d${d}/f${f}.bin`, randomBytes(rand(2048)));
      }
    }
    for (let d = 0; d < folders; d++) {
      for (let f = 0; f < each; f += 4) Deno.removeSync(`${small}/burst/d${d}/f${f}.bin`);
    }
    for (let d = 0; d < renamed; d++) {
      Deno.renameSync(`${small}/burst/d${d}`, `${small}/burst/r${d}`);
    }
    const last = performance.now();
    // Equal once both trees list the same names, sizes and mtimes (then proved by content below).
    const shape = (root: string) => {
      const lines: string[] = [];
      const walk = (dir: string) => {
        for (const entry of Deno.readDirSync(`${root}/${dir}`)) {
          const path = `${dir}/${entry.name}`, info = Deno.lstatSync(`${root}/${path}`);
          lines.push(`${path} ${info.size} ${info.mtime?.getTime()}`);
          if (entry.isDirectory) walk(path);
        }
      };
      walk("burst");
      return lines.sort().join("\n");
    };
    let equal = Infinity;
    while (performance.now() - last < 60_000) {
      try {
        if (shape(small) === shape(replica)) {
          equal = performance.now() - last;
          break;
        }
      } catch {
        // a folder not there yet
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const rss = await watcher.stop();
    const check = new Deno.Command("rsync", {
      args: ["-anci", "--delete", `${small}/`, `${replica}/`],
      stdout: "piped",
    }).outputSync();
    const differences = new TextDecoder().decode(check.stdout).split("\n")
      .filter((line) => line !== "").length;
    const files = folders * each;
    rows.push({
      scenario: `watch mode burst: ${files} files created in ${folders} folders, ${
        files / 4
      } removed, ${renamed} folders renamed, in ${
        ((last - started) / 1000).toFixed(2)
      } s (${SIZES.small} files watched) -> replica equal`,
      tool: Number.isFinite(equal)
        ? `${(equal / 1000).toFixed(2)} s after the last event${
          differences === 0 ? "" : ` (${differences} differences by content!)`
        }`
        : "not within 60 s",
      rsync: "n/a",
      ratio: "",
      target: "<= 5 s, RSS <= 300 MiB",
      rss: `${rss.toFixed(0)} MiB`,
    });
    console.error(`  equal after ${(equal / 1000).toFixed(2)} s, ${rss.toFixed(0)} MiB`);
  }
}

// ---------------------------------------------------------------- S3

const s3Missing = flags["no-s3"] || !runs("s3") ? "--no-s3 or --only given" : s3BenchMissing();
let s3Rows: Row[] = [];
if (s3Missing === undefined) s3Rows = await benchS3({ rounds: ROUNDS, quick: QUICK, base });
else console.error(`S3 rows left out: ${s3Missing}`);

// ---------------------------------------------------------------- SSH

const sshMissing = !runs("ssh") ? "--only given" : sftpBenchMissing();
let sshRows: Row[] = [];
if (sshMissing === undefined) sshRows = await benchSftp({ rounds: ROUNDS, quick: QUICK, base });
else console.error(`SSH rows left out: ${sshMissing}`);

// ---------------------------------------------------------------- report

const machine = `${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}, ${
  new TextDecoder().decode(new Deno.Command("rsync", { args: ["--version"] }).outputSync().stdout)
    .split("\n")[0]
}`;
console.log(`\nMachine: ${machine}; ${ROUNDS} rounds, medians.\n`);
for (const fill of floorCells) fill();
printTable("rsync -a --delete", rows);
if (rows.some((row) => row.floor !== undefined)) {
  console.log(
    "\nvs 2-thread floor: the medians of the same run; for a --once row (time - start-up) / floor" +
      ` (start-up ${startup === undefined ? "not measured" : `${startup.toFixed(3)} s`}), ` +
      "for continuous mode and the one-thread floor time / floor, for the idle cycle its CPU / " +
      "the floor's CPU (GNU time's user + sys).",
  );
}
if (s3Rows.length > 0) {
  console.log("");
  printTable("rclone sync --links --metadata --checksum", s3Rows);
}
if (sshRows.length > 0) {
  console.log("");
  printTable('rsync -a --delete -e "ssh -p PORT -i KEY"', sshRows);
}
if (flags.dir === undefined) Deno.removeSync(base, { recursive: true });

/**
 * Benchmark: folder-mirror against `rsync -a --delete` on the same data, in
 * the same run, alternating, several rounds. Prints medians, the median of
 * the pairwise ratios (tool / rsync) and the tool's peak RSS. One row is not
 * the tool: the floor, a bare Deno walk of both trees (`floor.ts`), the least
 * any Deno mirror's unchanged cycle costs here. One row times the default,
 * continuous mode: a cycle after the first, in one process.
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
 *   --only LIST the groups of rows to run, comma-separated: small (initial, unchanged,
 *               floor, continuous, 1% changed), large, huge, rename, watch, s3, ssh
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  buildTree,
  compareRounds,
  percentile,
  printTable,
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
const GROUPS = ["small", "large", "huge", "rename", "watch", "s3", "ssh"];
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
/** The memory target of the big tree's rows (the issue's, by size). */
const HUGE_RSS = SIZES.huge >= 1_000_000 ? 256 : 96;

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
): Promise<void> {
  return compareRounds(rows, scenario, target, (i) => {
    const pair = round(i);
    return { tool: pair.tool, other: pair.rsync };
  }, rounds);
}

// ---------------------------------------------------------------- scenarios

console.error(`building trees in ${base} ...`);
const small = `${base}/small-src`;
const smallFiles = buildTree(small, SIZES.small, SIZES.smallDirs, 4096);
const large = `${base}/large-src`;
if (runs("large")) buildLarge(large);

if (runs("small")) {
  console.error("initial mirror, small files");
  await compare(`initial mirror, ${SIZES.small} files of ~4 KiB`, "<= 1.0 x", () => {
    const t = freshPath("t-init"), r = freshPath("r-init");
    return { tool: () => mirror(small, t), rsync: () => rsync(small, r) };
  });
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
  await compare(`first cycle after an initial mirror, ${SIZES.small} files`, "<= 1.0 x", () => {
    const t = freshPath("t-after"), r = freshPath("r-after");
    mirror(small, t);
    rsync(small, r);
    return { tool: () => mirror(small, t), rsync: () => rsync(small, r) };
  });

  const toolReplica = freshPath("t-sync"), rsyncReplica = freshPath("r-sync");
  mirror(small, toolReplica);
  rsync(small, rsyncReplica);

  console.error("unchanged cycle");
  await compare(`unchanged cycle, ${SIZES.small} files`, "<= 1.0 x", () => ({
    tool: () => mirror(small, toolReplica),
    rsync: () => rsync(small, rsyncReplica),
  }));

  console.error("floor: a bare Deno walk of both trees");
  const FLOOR = new URL("./floor.ts", import.meta.url).pathname;
  await compare(`floor: bare Deno walk of both ${SIZES.small}-file trees (no mirror)`, "", () => ({
    tool: () =>
      timed(Deno.execPath(), ["run", "--allow-read", "--no-prompt", FLOOR, small, toolReplica]),
    rsync: () => rsync(small, rsyncReplica),
  }));

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
    await compare(
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
    rows.at(-1)!.rss = "";
    state.close();
  }

  console.error("1% changed");
  await compare(`1% changed, ${SIZES.small} files`, "<= 1.0 x", () => {
    for (let i = 0; i < SIZES.small / 100; i++) {
      const path = `${small}/${smallFiles[rand(smallFiles.length)]}`;
      const size = rand(2) ? Deno.statSync(path).size : rand(8193);
      Deno.writeFileSync(path, randomBytes(size));
    }
    return { tool: () => mirror(small, toolReplica), rsync: () => rsync(small, rsyncReplica) };
  });
}

if (runs("huge")) {
  console.error(`big tree: ${SIZES.huge} files`);
  const huge = `${base}/huge-src`;
  buildTree(huge, SIZES.huge, SIZES.hugeDirs, 256);
  await new Promise((resolve) => setTimeout(resolve, 1100)); // settled: copies are recorded
  const hugeTool = freshPath("t-huge"), hugeRsync = freshPath("r-huge");
  const hugeTarget = `<= 1.0 x, RSS <= ${HUGE_RSS} MiB`;
  const hugeRounds = Math.min(ROUNDS, 3);
  await compare(`initial mirror, ${SIZES.huge} files of ~256 B`, hugeTarget, (i) => {
    // The first round's copies stay: the unchanged rows below use them.
    const t = i === 0 ? hugeTool : freshPath("t-huge"),
      r = i === 0 ? hugeRsync : freshPath("r-huge");
    return { tool: () => mirror(huge, t), rsync: () => rsync(huge, r) };
  }, SIZES.huge >= 500_000 ? 1 : hugeRounds);
  await compare(`unchanged cycle, ${SIZES.huge} files`, hugeTarget, () => ({
    tool: () => mirror(huge, hugeTool),
    rsync: () => rsync(huge, hugeRsync),
  }), hugeRounds);
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
printTable("rsync -a --delete", rows);
if (s3Rows.length > 0) {
  console.log("");
  printTable("rclone sync --links --metadata --checksum", s3Rows);
}
if (sshRows.length > 0) {
  console.log("");
  printTable('rsync -a --delete -e "ssh -p PORT -i KEY"', sshRows);
}
if (flags.dir === undefined) Deno.removeSync(base, { recursive: true });

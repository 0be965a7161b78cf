/**
 * What the benchmarks share: deterministic data, timed runs under GNU time,
 * medians, and rounds that alternate the tool and the one it is measured
 * against.
 *
 * @module
 */

const pool = new Uint8Array(1 << 20);
for (let i = 0; i < pool.length; i += 65_536) crypto.getRandomValues(pool.subarray(i, i + 65_536));
let seed = 12345;
/** Deterministic pseudo-random integer in [0, n). */
export function rand(n: number): number {
  seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
  return seed % n;
}
/** `size` bytes of random-looking data (slices of one random megabyte). */
export function randomBytes(size: number): Uint8Array {
  // (A whole megabyte starts at 0: rand(0) would be NaN.)
  const start = size < pool.length ? rand(pool.length - size) : 0;
  if (size <= pool.length) return pool.slice(start, start + size);
  const out = new Uint8Array(size);
  for (let at = 0; at < size; at += pool.length) {
    out.set(pool.subarray(0, Math.min(pool.length, size - at)), at);
  }
  out[0] = rand(256);
  return out;
}

/** `count` files of mean `meanBytes` spread over `dirs` folders (two levels). */
export function buildTree(root: string, count: number, dirs: number, meanBytes: number): string[] {
  const folders: string[] = [];
  const top = Math.max(1, Math.round(Math.sqrt(dirs)));
  for (let i = 0; folders.length < dirs; i++) {
    const parent = `d${i % top}`;
    folders.push(i < top ? parent : `${parent}/s${i}`);
  }
  for (const folder of folders) Deno.mkdirSync(`${root}/${folder}`, { recursive: true });
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const path = `${folders[i % folders.length]}/f${i}.dat`;
    Deno.writeFileSync(`${root}/${path}`, randomBytes(rand(2 * meanBytes + 1)));
    files.push(path);
  }
  return files;
}

/** One timed run. */
export interface Run {
  seconds: number;
  rssMiB: number;
  /** CPU time, user + sys, of the process and its threads (where measured). */
  cpuSeconds?: number;
}

/** Run a command under GNU time; wall seconds, peak RSS and CPU (user + sys). */
export function timed(program: string, args: string[]): Run {
  const started = performance.now();
  const out = new Deno.Command("/usr/bin/time", {
    args: ["-f", "@@rss %M cpu %U %S", program, ...args],
    stdout: "null",
    stderr: "piped",
  }).outputSync();
  const seconds = (performance.now() - started) / 1000;
  const stderr = new TextDecoder().decode(out.stderr);
  const [, rss = "0", user = "0", sys = "0"] = stderr.match(/@@rss (\d+) cpu ([\d.]+) ([\d.]+)/) ??
    [];
  if (!out.success) throw new Error(`${program} ${args.join(" ")} failed:\n${stderr}`);
  return { seconds, rssMiB: Number(rss) / 1024, cpuSeconds: Number(user) + Number(sys) };
}

let clockTicks: number | undefined;
/**
 * The CPU time (user + sys, all its threads) process `pid` has used so far,
 * from `/proc/PID/stat` (read by `cat`: Deno reads `/proc` only with
 * `--allow-all`).
 */
export function processCpu(pid: number): number {
  const text = (args: string[]) =>
    new TextDecoder().decode(
      new Deno.Command(args[0]!, { args: args.slice(1) }).outputSync().stdout,
    );
  clockTicks ??= Number(text(["getconf", "CLK_TCK"])) || 100;
  // The fields after the name (which may hold spaces), from field 3 on: 14 utime, 15 stime.
  const fields = text(["cat", `/proc/${pid}/stat`]).split(") ").at(-1)!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

/** The `p`th percentile of `values`. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** The median of `values`. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** One row of a report: `rsync` is the other tool's time (rsync or rclone). */
export interface Row {
  scenario: string;
  tool: string;
  rsync: string;
  ratio: string;
  target: string;
  rss: string;
  /** The tool against the two-thread floor of its tree (a column where any row has it). */
  floor?: string;
}

/** What {@link compareRounds} measured: its row, and the medians of the rounds. */
export interface Compared {
  row: Row;
  /** Median wall seconds of the tool and of the other. */
  tool: number;
  other: number;
  /** Median CPU seconds (user + sys) of the tool and of the other, where measured. */
  toolCpu: number | undefined;
  otherCpu: number | undefined;
}

/** The median of the runs' CPU seconds; undefined if any run has none. */
function medianCpu(runs: readonly Run[]): number | undefined {
  const cpu = runs.map((run) => run.cpuSeconds);
  return cpu.every((c) => c !== undefined) ? median(cpu as number[]) : undefined;
}

/**
 * Alternate the tool and the other for `rounds` rounds (`round` sets up each
 * pair); push the medians, the median of the pairwise ratios and the tool's
 * peak RSS to `rows`; return the row and the medians.
 */
export async function compareRounds(
  rows: Row[],
  scenario: string,
  target: string,
  round: (i: number) => { tool: () => Run | Promise<Run>; other: () => Run | Promise<Run> },
  rounds: number,
): Promise<Compared> {
  const tools: Run[] = [], others: Run[] = [], ratios: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const pair = round(i);
    let t: Run, o: Run;
    if (i % 2 === 0) {
      t = await pair.tool();
      o = await pair.other();
    } else {
      o = await pair.other();
      t = await pair.tool();
    }
    tools.push(t);
    others.push(o);
    ratios.push(t.seconds / o.seconds);
  }
  const tool = median(tools.map((r) => r.seconds)), other = median(others.map((r) => r.seconds));
  const row = {
    scenario,
    tool: `${tool.toFixed(3)} s`,
    rsync: `${other.toFixed(3)} s`,
    ratio: `${median(ratios).toFixed(2)} x`,
    target,
    rss: `${Math.max(...tools.map((r) => r.rssMiB)).toFixed(0)} MiB`,
  };
  rows.push(row);
  console.error(`  ${scenario}: ${row.tool} vs ${row.rsync} -> ${row.ratio}`);
  return { row, tool, other, toolCpu: medianCpu(tools), otherCpu: medianCpu(others) };
}

/** Print `rows` as a Markdown table, `other` naming the tool compared with. */
export function printTable(other: string, rows: readonly Row[]): void {
  const floor = rows.some((row) => row.floor !== undefined);
  console.log(
    `| scenario | folder-mirror | ${other} | ratio (median of pairs) | ` +
      `${floor ? "vs 2-thread floor | " : ""}target | peak RSS |`,
  );
  console.log(`|---|---|---|---|${floor ? "---|" : ""}---|---|`);
  for (const row of rows) {
    console.log(
      `| ${row.scenario} | ${row.tool} | ${row.rsync} | ${row.ratio} | ` +
        `${floor ? `${row.floor ?? ""} | ` : ""}${row.target} | ${row.rss} |`,
    );
  }
}

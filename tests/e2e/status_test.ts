/**
 * `--status-file` and `--metrics-file` as a monitor meets them: read again
 * and again while the real program runs its cycles on real folders.
 */
import assert from "node:assert/strict";
import {
  afterCtimeSecond,
  copyUnderWay,
  logHas,
  MAIN,
  mirrored,
  runMirror,
  runOnce,
  startLoop,
  waitFor,
  withWork,
  writeFile,
} from "../helpers.ts";
import {
  assertPromtoolAccepts,
  HAS_PROMTOOL,
  type Metrics,
  parseMetrics,
  valueOf,
} from "../prometheus.ts";
import { VERSION } from "../../lib/core/version.ts";

const FILES = ["--status-file", "status.json", "--metrics-file", "metrics.prom"];

// deno-lint-ignore no-explicit-any
type Doc = any;

/**
 * Read `work/status.json` and `work/metrics.prom` every few milliseconds until
 * stopped: every read must be whole (valid JSON, every metrics line well
 * formed); `latest` is the last document read.
 */
function watchFiles(work: string) {
  const seen = { docs: [] as Doc[], bad: [] as string[], metricReads: 0 };
  let latest: Doc | undefined;
  const read = () => {
    for (const [name, check] of [["status.json", JSON.parse], ["metrics.prom", parseMetrics]]) {
      let text: string;
      try {
        text = Deno.readTextFileSync(`${work}/${name}`);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) continue; // not written yet
        throw error;
      }
      try {
        const value = (check as (text: string) => unknown)(text);
        if (name === "status.json") {
          latest = value;
          seen.docs.push(value);
        } else seen.metricReads++;
      } catch (error) {
        seen.bad.push(`${name}: ${(error as Error).message}: ${JSON.stringify(text)}`);
      }
    }
  };
  const timer = setInterval(read, 3);
  return {
    seen,
    latest: () => latest,
    /** Wait until the latest document satisfies `check`. */
    until: async (what: string, check: (doc: Doc) => boolean, ms = 20_000) => {
      try {
        await waitFor(what, () => latest !== undefined && check(latest), ms, 3);
      } catch (error) {
        throw new Error(`${(error as Error).message}; the status: ${JSON.stringify(latest)}`);
      }
    },
    stop: () => clearInterval(timer),
  };
}

/** Every counter of `before` is at most its value in `after`. */
function assertMonotone(before: Metrics, after: Metrics): void {
  for (const sample of before.samples) {
    if (before.type.get(sample.name) !== "counter") continue;
    const later = valueOf(after, sample.name, sample.labels);
    assert.ok(later !== undefined && later >= sample.value, `${sample.name} went backwards`);
  }
}

Deno.test("status: read while cycles run, always whole; counts, states and metrics follow the cycles", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "alpha");
    writeFile(`${work}/src/b.txt`, "bravo");
    writeFile(`${work}/src/c.txt`, "charlie");
    await afterCtimeSecond(`${work}/src/c.txt`); // settled files: their copies are recorded
    const loop = startLoop(work, "0.2", ...FILES);
    const files = watchFiles(work);
    const metrics = () => parseMetrics(Deno.readTextFileSync(`${work}/metrics.prom`));
    let output: Deno.CommandOutput | undefined;
    try {
      // The first cycle: what it copied.
      await files.until("the first cycle", (doc) => doc.cycles.full >= 1);
      let doc = files.latest();
      assert.equal(doc.format, 1);
      assert.equal(doc.version, VERSION);
      assert.equal(doc.pid, loop.child.pid);
      assert.equal(doc.mode, "loop");
      assert.equal(doc.source, "src");
      assert.equal(doc.replica, "rep");
      assert.deepEqual(
        { ...doc.lastCycle.counts, ok: doc.lastCycle.ok },
        {
          copied: 3,
          updated: 0,
          moved: 0,
          removed: 0,
          linked: 0,
          folders: 0,
          symlinks: 0,
          attributes: 0,
          warnings: 0,
          leftBehind: 0,
          failed: 0,
          bytes: 17,
          backedUp: 0,
          ok: true,
        },
      );
      assert.equal(doc.lastSuccess.end, doc.lastCycle.end);
      await waitFor("the metrics", () => valueOf(metrics(), "folder_mirror_copied_total") === 3);
      const first = metrics();
      assert.ok(valueOf(first, "folder_mirror_last_success_timestamp_seconds")! > 0);

      // Known changes: one update, one removal, one move (in a later second than the copies).
      await new Promise((resolve) => setTimeout(resolve, 1000));
      writeFile(`${work}/src/a.txt`, "ALPHA, again");
      Deno.removeSync(`${work}/src/b.txt`);
      Deno.renameSync(`${work}/src/c.txt`, `${work}/src/d.txt`);
      await files.until(
        "the changes counted",
        (doc) => doc.totals.updated === 1 && doc.totals.removed === 1 && doc.totals.moved === 1,
      );
      doc = files.latest();
      assert.equal(doc.totals.copied, 3);
      assert.equal(doc.totals.failed, 0);
      assert.equal(doc.totals.bytes, 17 + 12);

      // A longer cycle (a big sparse file, read in full while copied): "copying" meanwhile.
      {
        using big = Deno.openSync(`${work}/big`, { write: true, create: true });
        big.writeSync(new TextEncoder().encode("head"));
        big.truncateSync(256 * 2 ** 20);
      }
      Deno.renameSync(`${work}/big`, `${work}/src/big`);
      await waitFor("the copy under way", copyUnderWay(`${work}/rep`), 20_000, 3);
      await files.until("copying", (doc) => doc.state === "copying" && doc.current !== null);
      assert.equal(files.latest().current.kind, "full");
      await files.until("the big file copied", (doc) => doc.totals.copied === 4);
      await files.until("idle", (doc) => doc.state === "idle");
      assert.equal(files.latest().totals.updated, 1, "copied once, whole");
      const lastSuccess = files.latest().lastSuccess.end;

      // The source goes away (an unmounted disk): refusing, the last success stays before it.
      Deno.renameSync(`${work}/src`, `${work}/away`);
      await files.until("refusing", (doc) => doc.state === "refusing");
      doc = files.latest();
      assert.equal(doc.lastCycle.ok, false);
      assert.match(doc.lastCycle.refused, /^source folder src is not usable \(No such file/);
      assert.match(doc.lastCycle.errors[0].message, /^Source folder src is not usable/);
      assert.ok(Date.parse(doc.lastSuccess.end) >= Date.parse(lastSuccess));
      assert.ok(Date.parse(doc.lastSuccess.end) <= Date.parse(doc.lastCycle.start));
      await waitFor(
        "the metrics say refusing",
        () => valueOf(metrics(), "folder_mirror_state", { state: "refusing" }) === 1,
      );
      Deno.renameSync(`${work}/away`, `${work}/src`);
      await files.until("idle again", (doc) => doc.state === "idle" && doc.lastCycle.ok);
      assert.ok(mirrored(work)());
      assertMonotone(first, metrics());
    } finally {
      output = await loop.stop();
      files.stop();
    }
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    assert.deepEqual(files.seen.bad, [], "every read was whole");
    assert.ok(files.seen.docs.length > 20 && files.seen.metricReads > 20);
    const final = JSON.parse(Deno.readTextFileSync(`${work}/status.json`));
    assert.equal(final.state, "stopping");
    assert.equal(final.current, null);
    const states = new Set([...files.seen.docs.map((doc) => doc.state), final.state]);
    for (const state of ["copying", "idle", "refusing", "stopping"]) assert.ok(states.has(state));
    const text = Deno.readTextFileSync(`${work}/metrics.prom`);
    assert.equal(valueOf(parseMetrics(text), "folder_mirror_copied_total"), final.totals.copied);
    assert.ok(!Deno.readDirSync(work).some((entry) => entry.name.endsWith(".tmp")));
    if (HAS_PROMTOOL) await assertPromtoolAccepts(text);
    else console.error("promtool check metrics skipped: promtool (Debian's prometheus) is missing");
  });
});

Deno.test("status: --watch says what its events did", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    const loop = startLoop(work, "30", "--watch", ...FILES);
    try {
      const read = (): Doc => JSON.parse(Deno.readTextFileSync(`${work}/status.json`));
      await waitFor("the first cycle", () => read().cycles.full === 1);
      assert.equal(read().mode, "watch");
      writeFile(`${work}/src/b.txt`, "b");
      await waitFor(
        "a partial cycle",
        () => read().cycles.partial >= 1 && read().totals.copied === 2,
      );
      const doc = read();
      assert.equal(doc.cycles.full, 1, "the partial cycle mirrored it");
      assert.ok(doc.watch.events >= 1, JSON.stringify(doc.watch));
      assert.equal(typeof doc.watch.overflows, "number");
      const metrics = parseMetrics(Deno.readTextFileSync(`${work}/metrics.prom`));
      assert.ok(valueOf(metrics, "folder_mirror_watch_events_total")! >= 1);
      assert.ok(valueOf(metrics, "folder_mirror_cycles_total", { kind: "partial" })! >= 1);
    } finally {
      await loop.stop();
    }
  });
});

Deno.test("status: --dry-run and --verify write neither file", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    const dry = await runOnce(work, "--dry-run", ...FILES);
    assert.equal(dry.code, 0, dry.stderr);
    const verify = await runMirror(
      ["--source", "src", "--replica", "src2", "--verify", ...FILES],
      work,
    );
    assert.equal(verify.code, 1, verify.stderr);
    const names = [...Deno.readDirSync(work)].map((entry) => entry.name);
    assert.deepEqual(names.filter((name) => /status|metrics/.test(name)), []);
  });
});

Deno.test("status: a status file that cannot be written is a WARNING; the mirror still mirrors", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    Deno.mkdirSync(`${work}/status.json.tmp/in-the-way`, { recursive: true });
    const loop = startLoop(work, "0.2", ...FILES);
    let output: Deno.CommandOutput | undefined;
    try {
      await waitFor("a.txt", mirrored(work));
      await waitFor(
        "the warning",
        logHas(work, /\[WARNING\]: Could not write the status file status\.json \(/),
      );
      writeFile(`${work}/src/b.txt`, "b");
      await waitFor("b.txt", mirrored(work));
      const metrics = parseMetrics(Deno.readTextFileSync(`${work}/metrics.prom`));
      assert.ok(
        valueOf(metrics, "folder_mirror_copied_total")! >= 1,
        "the metrics file is written",
      );
      Deno.removeSync(`${work}/status.json.tmp`, { recursive: true });
      await waitFor("written again", logHas(work, "The status file status.json is written again."));
      assert.equal(JSON.parse(Deno.readTextFileSync(`${work}/status.json`)).totals.copied, 2);
    } finally {
      output = await loop.stop();
    }
    assert.equal(output.code, 0);
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(stderr.match(/Could not write the status file/g)?.length, 1, "said once");
  });
});

Deno.test("status: path-scoped permissions as the README grants them are enough for both files", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read=src,rep,log.txt.state,m.prom.tmp,s.json.tmp",
        "--allow-write=rep,log.txt,log.txt.state,m.prom,m.prom.tmp,s.json,s.json.tmp",
        "--no-prompt",
        MAIN,
        ...["--source", "src", "--replica", "rep", "--log-file", "log.txt", "--once"],
        ...["--status-file", "s.json", "--metrics-file", "m.prom"],
      ],
      cwd: work,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    assert.doesNotMatch(stderr, /Could not write/);
    assert.equal(JSON.parse(Deno.readTextFileSync(`${work}/s.json`)).totals.copied, 1);
    assert.equal(
      valueOf(parseMetrics(Deno.readTextFileSync(`${work}/m.prom`)), "folder_mirror_copied_total"),
      1,
    );
  });
});

const refused: [string[], RegExp][] = [
  [
    ["--status-file", "src/status.json"],
    /^--status-file: 'src\/status.json' is inside the source folder/,
  ],
  [["--metrics-file", "rep/m.prom"], /^--metrics-file: 'rep\/m.prom' is inside the replica folder/],
  [["--status-file", "log.txt"], /^--status-file: 'log.txt' is the log file\.$/],
  [["--status-file", "s", "--metrics-file", "s"], /^--metrics-file: 's' is the status file\.$/],
  [
    ["--metrics-file", "no/such/m.prom"],
    /^--metrics-file: cannot open 'no\/such\/m.prom': its folder/,
  ],
];

for (const [args, message] of refused) {
  Deno.test(`status: ${args.join(" ")} is refused, nothing touched`, async () => {
    await withWork(async (work) => {
      Deno.mkdirSync(`${work}/rep`);
      const result = await runOnce(work, ...args);
      assert.equal(result.code, 2);
      assert.match(result.stderr.replace(/^folder-mirror: /, "").trim(), message);
      assert.deepEqual([...Deno.readDirSync(work)].map((e) => e.name).sort(), ["rep", "src"]);
    });
  });
}

/**
 * The status model (`RunStatus`), its JSON document and Prometheus text, and
 * the writer of both files (`StatusFiles`), with a clock and folders of the
 * test's own.
 */
import assert from "node:assert/strict";
import { MAX_ERRORS, RunStatus, StatusFiles } from "../../lib/cli/status.ts";
import { renderMetrics } from "../../lib/cli/metrics.ts";
import { jsonFormatter } from "../../lib/cli/log.ts";
import { emptyTally, type MirrorLog, reportSummary, type Tally } from "../../lib/engine/report.ts";
import type { CycleResult } from "../../lib/engine/mirror.ts";
import { assertPromtoolAccepts, HAS_PROMTOOL, parseMetrics, valueOf } from "../prometheus.ts";

const IDENTITY = {
  version: "0.1.0",
  pid: 4242,
  source: "src",
  replica: "rep",
  mode: "loop",
} as const;
const T0 = Date.UTC(2026, 11, 5, 23, 0, 0);

/** A status on a clock the test moves. */
function clocked() {
  const clock = { now: T0 };
  return { clock, status: new RunStatus(IDENTITY, () => clock.now) };
}

const tally = (counts: Partial<Tally>): CycleResult => ({ ...emptyTally(), ...counts });

/** A log that keeps its lines. */
function keptLog(): MirrorLog & { lines: string[] } {
  const lines: string[] = [];
  const keep = (level: string) => (message: string, properties: Record<string, unknown> = {}) =>
    lines.push(`${level} ${message.replace(/\{(\w+)\}/g, (_, key) => String(properties[key]))}`);
  return {
    lines,
    debug: keep("DEBUG"),
    info: keep("INFO"),
    warn: keep("WARNING"),
    error: keep("ERROR"),
    isEnabledFor: () => false,
  };
}

Deno.test("status: the states a run goes through, and the last cycle and last success", () => {
  const { clock, status } = clocked();
  assert.equal(status.document().state, "idle");
  assert.equal(status.document().lastCycle, null);
  assert.equal(status.document().lastSuccess, null);

  status.cycleStarted("full");
  assert.equal(status.document().state, "copying");
  assert.equal(status.document().current?.start, "2026-12-05T23:00:00.000Z");
  clock.now += 2500;
  status.cycleEnded(tally({ copied: 3, bytes: 17, digest: "abc" }), false);
  let doc = status.document();
  assert.equal(doc.state, "idle");
  assert.equal(doc.current, null);
  assert.deepEqual(doc.lastCycle, {
    start: "2026-12-05T23:00:00.000Z",
    end: "2026-12-05T23:00:02.500Z",
    seconds: 2.5,
    ok: true,
    digest: "abc",
    counts: {
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
    },
    errors: [],
    errorsLeftOut: 0,
  });
  assert.deepEqual(doc.lastSuccess, {
    start: "2026-12-05T23:00:00.000Z",
    end: "2026-12-05T23:00:02.500Z",
  });

  // A source that went away: refusing, and the last success stays.
  clock.now += 10_000;
  status.cycleStarted("full");
  status.cycleEnded(tally({ failed: 1, refused: "source folder src is not usable" }), false);
  doc = status.document();
  assert.equal(doc.state, "refusing");
  assert.equal(doc.lastCycle?.ok, false);
  assert.equal(doc.lastCycle?.refused, "source folder src is not usable");
  assert.equal(doc.lastSuccess?.end, "2026-12-05T23:00:02.500Z");
  assert.deepEqual(doc.cycles, { full: 2, partial: 0, failed: 1 });

  // It is back: idle again.
  clock.now += 10_000;
  status.cycleStarted("full");
  status.cycleEnded(tally({}), false);
  assert.equal(status.document().state, "idle");
  assert.equal(status.document().lastSuccess?.end, "2026-12-05T23:00:22.500Z");

  // Told to stop during a cycle: stopping, and the stopped cycle is no success.
  status.cycleStarted("full");
  status.stopping();
  assert.equal(status.document().state, "stopping");
  clock.now += 1000;
  status.cycleEnded(tally({ copied: 1 }), true);
  doc = status.document();
  assert.equal(doc.state, "stopping");
  assert.equal(doc.lastCycle?.stopped, true);
  assert.equal(doc.lastCycle?.ok, false);
  assert.equal(doc.lastSuccess?.end, "2026-12-05T23:00:22.500Z");
  assert.deepEqual(doc.cycles, { full: 4, partial: 0, failed: 1 }, "a stopped cycle did not fail");
  assert.equal(doc.totals.copied, 4);
});

Deno.test("status: partial cycles add to the totals only; errors are a full cycle's, capped", () => {
  const { clock, status } = clocked();
  status.cycleStarted("full");
  for (let i = 0; i < MAX_ERRORS + 5; i++) {
    status.logged({
      level: "error",
      timestamp: clock.now,
      message: `Could not copy file f${i}: Permission denied.`,
      path: `f${i}`,
    });
  }
  status.logged({ level: "warning", timestamp: clock.now, message: "not an error" });
  status.cycleEnded(tally({ failed: MAX_ERRORS + 5 }), false);
  let doc = status.document();
  assert.equal(doc.lastCycle?.errors.length, MAX_ERRORS);
  assert.equal(doc.lastCycle?.errorsLeftOut, 5);
  assert.deepEqual(doc.lastCycle?.errors[0], {
    time: "2026-12-05T23:00:00.000Z",
    message: "Could not copy file f0: Permission denied.",
    path: "f0",
  });

  status.cycleStarted("partial");
  assert.equal(status.document().current?.kind, "partial");
  status.logged({ level: "error", timestamp: clock.now, message: "partial's own" });
  status.cycleEnded(tally({ copied: 2, moved: 1, bytes: 5 }), false);
  doc = status.document();
  assert.equal(doc.lastCycle?.counts.copied, 0, "the last full cycle's counts");
  assert.equal(doc.lastCycle?.errors.length, MAX_ERRORS);
  assert.deepEqual(doc.cycles, { full: 1, partial: 1, failed: 1 });
  assert.equal(doc.totals.copied, 2);
  assert.equal(doc.totals.moved, 1);
  assert.equal(doc.totals.failed, MAX_ERRORS + 5);
  assert.equal(doc.state, "idle");
});

Deno.test("status: the copies of the running cycle, told on to the progress bar", async () => {
  const { status } = clocked();
  const told: string[] = [];
  const observer = status.copies({
    add: (bytes) => told.push(`add ${bytes}`),
    advance: (bytes) => told.push(`advance ${bytes}`),
    known: () => told.push("known"),
    stop: () => Promise.resolve(void told.push("stop")),
  });
  status.cycleStarted("full");
  observer.add(10);
  observer.add(20);
  observer.advance(10);
  observer.known();
  assert.deepEqual(status.document().current?.files, { done: 1, total: 2 });
  assert.deepEqual(status.document().current?.bytes, { done: 10, total: 30 });
  await observer.stop();
  assert.deepEqual(told, ["add 10", "add 20", "advance 10", "known", "stop"]);
});

Deno.test("metrics: counters over the run, gauges of the last cycle and success, HELP and TYPE", async () => {
  const { clock, status } = clocked();
  let metrics = parseMetrics(await renderMetrics(status.document()));
  assert.equal(valueOf(metrics, "folder_mirror_last_success_timestamp_seconds"), 0);
  assert.equal(valueOf(metrics, "folder_mirror_last_cycle_duration_seconds"), undefined);
  assert.equal(valueOf(metrics, "folder_mirror_state", { state: "idle" }), 1);

  status.cycleStarted("full");
  clock.now += 1500;
  status.cycleEnded(tally({ copied: 3, updated: 1, removed: 2, moved: 1, bytes: 4096 }), false);
  status.cycleStarted("partial");
  status.cycleEnded(tally({ copied: 1, bytes: 4 }), false);
  status.cycleStarted("full");
  const text = await renderMetrics(status.document({ events: 7, overflows: 1, fullCycles: 1 }));
  metrics = parseMetrics(text);
  const counters = metrics.samples.filter((s) => metrics.type.get(s.name) === "counter");
  assert.ok(counters.length >= 12);
  for (const { name } of counters) assert.match(name, /^folder_mirror_\w+_total$/);
  assert.equal(valueOf(metrics, "folder_mirror_copied_total"), 4);
  assert.equal(valueOf(metrics, "folder_mirror_updated_total"), 1);
  assert.equal(valueOf(metrics, "folder_mirror_removed_total"), 2);
  assert.equal(valueOf(metrics, "folder_mirror_moved_total"), 1);
  assert.equal(valueOf(metrics, "folder_mirror_failed_total"), 0);
  assert.equal(valueOf(metrics, "folder_mirror_written_bytes_total"), 4100);
  assert.equal(valueOf(metrics, "folder_mirror_cycles_total", { kind: "full" }), 1);
  assert.equal(valueOf(metrics, "folder_mirror_cycles_total", { kind: "partial" }), 1);
  assert.equal(valueOf(metrics, "folder_mirror_watch_events_total"), 7);
  assert.equal(valueOf(metrics, "folder_mirror_watch_overflows_total"), 1);
  assert.equal(metrics.type.get("folder_mirror_last_success_timestamp_seconds"), "gauge");
  assert.equal(valueOf(metrics, "folder_mirror_last_success_timestamp_seconds"), T0 / 1000 + 1.5);
  assert.equal(valueOf(metrics, "folder_mirror_last_cycle_start_timestamp_seconds"), T0 / 1000);
  assert.equal(valueOf(metrics, "folder_mirror_last_cycle_duration_seconds"), 1.5);
  assert.equal(valueOf(metrics, "folder_mirror_state", { state: "copying" }), 1);
  assert.equal(valueOf(metrics, "folder_mirror_state", { state: "idle" }), 0);
  assert.deepEqual(
    metrics.samples.find((s) => s.name === "folder_mirror_info")?.labels,
    { version: "0.1.0", mode: "loop", source: "src", replica: "rep" },
  );
  if (HAS_PROMTOOL) await assertPromtoolAccepts(text);
});

Deno.test("metrics: folder names that need escaping stay one label value", async () => {
  const status = new RunStatus({ ...IDENTITY, source: 'a "b"\\c\nd', replica: "r" });
  const text = await renderMetrics(status.document());
  const info = parseMetrics(text).samples.find((s) => s.name === "folder_mirror_info");
  assert.equal(info?.labels.source, 'a "b"\\c\nd');
  if (HAS_PROMTOOL) await assertPromtoolAccepts(text);
});

Deno.test("status files: replaced through PATH.tmp, written during a long cycle, at its end", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { status } = clocked();
    const log = keptLog();
    const files = new StatusFiles(status, {
      statusFile: `${dir}/status.json`,
      metricsFile: `${dir}/metrics.prom`,
      log,
      everyMs: 20,
    });
    const states: string[] = [];
    const stop = new AbortController();
    const result = await files.cycle("full", async () => {
      // The cycle runs a while: the files are written meanwhile.
      for (let i = 0; i < 10; i++) {
        await new Promise((resolve) => setTimeout(resolve, 15));
        try {
          states.push(JSON.parse(await Deno.readTextFile(`${dir}/status.json`)).state);
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        }
      }
      return tally({ copied: 1 });
    }, stop.signal);
    assert.equal(result.copied, 1);
    await files.close();
    assert.ok(states.length > 0 && states.every((state) => state === "copying"), `${states}`);
    const doc = JSON.parse(await Deno.readTextFile(`${dir}/status.json`));
    assert.equal(doc.state, "idle");
    assert.equal(doc.lastCycle.counts.copied, 1);
    const metrics = parseMetrics(await Deno.readTextFile(`${dir}/metrics.prom`));
    assert.equal(valueOf(metrics, "folder_mirror_copied_total"), 1);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "metrics.prom",
      "status.json",
    ]);
    assert.deepEqual(log.lines, []);

    files.stopping();
    await files.close();
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/status.json`)).state, "stopping");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("status files: one that cannot be written is one WARNING, and a line when it is again", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { status } = clocked();
    const log = keptLog();
    const files = new StatusFiles(status, { statusFile: `${dir}/status.json`, log });
    Deno.mkdirSync(`${dir}/status.json.tmp/full`, { recursive: true }); // no file can be made there
    const stop = new AbortController();
    for (let i = 0; i < 3; i++) {
      await files.cycle("full", () => Promise.resolve(tally({ copied: i })), stop.signal);
    }
    await files.close();
    assert.equal(log.lines.length, 1, log.lines.join("\n"));
    assert.match(
      log.lines[0]!,
      new RegExp(
        `^WARNING Could not write the status file ${dir}/status.json \\(.+\\); mirroring goes on`,
      ),
    );
    Deno.removeSync(`${dir}/status.json.tmp`, { recursive: true });
    await files.cycle("full", () => Promise.resolve(tally({})), stop.signal);
    await files.close();
    assert.equal(log.lines[1], `INFO The status file ${dir}/status.json is written again.`);
    assert.equal(JSON.parse(Deno.readTextFileSync(`${dir}/status.json`)).cycles.full, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("status files: with neither file, the cycles only run", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { status } = clocked();
    const files = new StatusFiles(status, { log: keptLog(), everyMs: 1 });
    const stop = new AbortController();
    await files.cycle("full", async () => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      return tally({ copied: 1 });
    }, stop.signal);
    await files.close();
    assert.equal(status.document().totals.copied, 1);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("json log: a cycle's summary carries its counts as fields", () => {
  const records: Record<string, unknown>[] = [];
  const log: MirrorLog = {
    debug: () => {},
    info: (message, properties = {}) => {
      const line = jsonFormatter({
        category: [],
        level: "info",
        timestamp: 0,
        rawMessage: message,
        message: [message],
        properties,
      });
      records.push(JSON.parse(line));
    },
    warn: () => {},
    error: () => {},
    isEnabledFor: () => false,
  };
  reportSummary(log, { ...emptyTally(), copied: 2, removed: 1, failed: 1, bytes: 7 }, 1234);
  reportSummary(log, { ...emptyTally(), planned: 4 }, 10, true);
  assert.deepEqual(records[0], {
    time: "1970-01-01T00:00:00.000Z",
    level: "INFO",
    message: records[0]!.message,
    action: "summary",
    bytes: 7,
    copied: 2,
    updated: 0,
    moved: 0,
    removed: 1,
    linked: 0,
    folders: 0,
    symlinks: 0,
    attributes: 0,
    warnings: 0,
    leftBehind: 0,
    failed: 1,
    backedUp: 0,
    seconds: 1.234,
  });
  assert.equal(records[1]!.planned, 4);
  assert.equal(records[1]!.failed, 0);
  assert.equal(records[1]!.seconds, 0.01);
});

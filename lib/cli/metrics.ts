/**
 * The status in Prometheus' text exposition format, for node_exporter's
 * textfile collector (`--metrics-file`). The text is made by `prom-client`
 * (loaded only when a metrics file is written); this module only says which
 * numbers of a {@link StatusDocument} become which metric.
 *
 * @module
 */
import type { Counts } from "../engine/report.ts";
import type { StatusDocument } from "./status.ts";

/** Each count of a cycle: its metric's name between `folder_mirror_` and `_total`, and its help. */
const COUNTS: Readonly<Record<keyof Counts, readonly [string, string]>> = {
  copied: ["copied", "Files copied that the replica did not have."],
  updated: ["updated", "Files copied over a different replica file."],
  moved: ["moved", "Replica files and folders moved (one rename each, no copy)."],
  removed: ["removed", "Replica entries removed."],
  linked: ["linked", "Replica files made another name of a file (hard links)."],
  folders: ["folders", "Folders made in the replica."],
  symlinks: ["symlinks", "Symlinks made or replaced in the replica."],
  attributes: ["attributes", "Replica entries whose attributes alone were set."],
  warnings: ["warnings", "Things skipped (WARNING lines)."],
  leftBehind: [
    "left_behind",
    "Files left behind because they changed or vanished while being copied.",
  ],
  failed: ["failed", "Actions that failed, and refusals (ERROR lines); later cycles retry."],
  bytes: ["written_bytes", "Bytes of file content written to the replica."],
  backedUp: [
    "backed_up",
    "Replica entries kept in the backup folder before they were deleted or overwritten.",
  ],
};

/** The states a run can be in, each a sample of `folder_mirror_state`. */
const STATES = ["copying", "idle", "stopping", "refusing"] as const;

const seconds = (iso: string) => Date.parse(iso) / 1000;

/**
 * `document`'s numbers as Prometheus text: counters `folder_mirror_*_total`
 * (over the whole run), gauges of the last cycle, of the last success
 * (`folder_mirror_last_success_timestamp_seconds`, 0 before the first one)
 * and of the state, each with its HELP and TYPE lines.
 *
 * @param document the status.
 * @returns the text of the metrics file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderMetrics } from "./metrics.ts";
 * import { RunStatus } from "./status.ts";
 * const status = new RunStatus({ version: "0.1.0", pid: 1, source: "s", replica: "r", mode: "once" });
 * const text = await renderMetrics(status.document());
 * assert.match(text, /^folder_mirror_last_success_timestamp_seconds 0$/m);
 * assert.match(text, /^# TYPE folder_mirror_copied_total counter$/m);
 * ```
 */
export async function renderMetrics(document: StatusDocument): Promise<string> {
  const { Counter, Gauge, Registry } = await import("npm:prom-client@^15.1.3");
  const registry = new Registry();
  type Labels = Record<string, string>;
  const labelNames = (samples: readonly (readonly [Labels, number])[]) =>
    Object.keys(samples[0]?.[0] ?? {});
  const gauge = (name: string, help: string, samples: readonly (readonly [Labels, number])[]) => {
    const metric = new Gauge({
      name: `folder_mirror_${name}`,
      help,
      labelNames: labelNames(samples),
      registers: [registry],
    });
    for (const [labels, value] of samples) metric.set(labels, value);
  };
  const counter = (name: string, help: string, samples: readonly (readonly [Labels, number])[]) => {
    const metric = new Counter({
      name: `folder_mirror_${name}_total`,
      help,
      labelNames: labelNames(samples),
      registers: [registry],
    });
    for (const [labels, value] of samples) metric.inc(labels, value);
  };

  const { cycles, lastCycle, lastSuccess, totals, watch } = document;
  gauge("info", "The running mirror (always 1): its version, mode and folders.", [[{
    version: document.version,
    mode: document.mode,
    source: document.source,
    replica: document.replica,
  }, 1]]);
  gauge(
    "state",
    "What the mirror is doing: 1 for the state it is in, 0 for the others.",
    STATES.map((state) => [{ state }, state === document.state ? 1 : 0]),
  );
  gauge("start_timestamp_seconds", "When the run started (Unix time).", [[
    {},
    seconds(document.started),
  ]]);
  counter("cycles", "Cycles ended: full ones, and partial ones of --watch.", [
    [{ kind: "full" }, cycles.full],
    [{ kind: "partial" }, cycles.partial],
  ]);
  counter("failed_cycles", "Full cycles that ended with failures or a refusal.", [[
    {},
    cycles.failed,
  ]]);
  for (const [key, [name, help]] of Object.entries(COUNTS)) {
    counter(name, help, [[{}, totals[key as keyof Counts]]]);
  }
  if (lastCycle !== null) {
    gauge("last_cycle_start_timestamp_seconds", "When the last full cycle started (Unix time).", [
      [{}, seconds(lastCycle.start)],
    ]);
    gauge("last_cycle_duration_seconds", "How long the last full cycle ran.", [[
      {},
      lastCycle.seconds,
    ]]);
    gauge("last_cycle_failed", "Failures (ERROR lines) of the last full cycle.", [[
      {},
      lastCycle.counts.failed,
    ]]);
  }
  gauge(
    "last_success_timestamp_seconds",
    "When the last full cycle without a failure ended (Unix time; 0: none yet in this run).",
    [[{}, lastSuccess === null ? 0 : seconds(lastSuccess.end)]],
  );
  if (watch !== undefined) {
    counter("watch_events", "Paths named by file-system events (--watch).", [[{}, watch.events]]);
    counter("watch_overflows", "Times file-system events may have been lost (--watch).", [[
      {},
      watch.overflows,
    ]]);
    counter("watch_full_cycles", "Full cycles asked for by --watch (events may have been lost).", [[
      {},
      watch.fullCycles,
    ]]);
  }
  return await registry.metrics();
}

/**
 * A small reader of Prometheus' text exposition format, for the tests of
 * `--metrics-file` (deliberately not the library that writes it), and
 * Debian's `promtool check metrics` where it is installed.
 *
 * @module
 */
import assert from "node:assert/strict";

/** One sample line: `name{labels} value`. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A metrics file read: each family's HELP and TYPE, and every sample. */
export interface Metrics {
  readonly help: ReadonlyMap<string, string>;
  readonly type: ReadonlyMap<string, string>;
  readonly samples: readonly Sample[];
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)$`);
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;

/**
 * Read `text`, asserting that every line is a comment, a blank line or a
 * sample `name{labels} value`, and that every sample's family has a HELP and
 * a TYPE line before it.
 */
export function parseMetrics(text: string): Metrics {
  const help = new Map<string, string>(), type = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const comment = line.match(new RegExp(`^# (HELP|TYPE) (${NAME}) (.*)$`));
    if (comment) {
      (comment[1] === "HELP" ? help : type).set(comment[2]!, comment[3]!);
      continue;
    }
    const sample = line.match(SAMPLE);
    assert.ok(sample, `not a sample line: ${JSON.stringify(line)}`);
    const [, name, labelText = "", valueText] = sample;
    const labels: Record<string, string> = {};
    LABEL.lastIndex = 0;
    while (LABEL.lastIndex < labelText.length) {
      const at = LABEL.lastIndex;
      const label = LABEL.exec(labelText);
      assert.ok(label && label.index === at, `bad labels in ${JSON.stringify(line)}`);
      labels[label[1]!] = label[2]!.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    const value = Number(valueText);
    assert.ok(!Number.isNaN(value), `bad value in ${JSON.stringify(line)}`);
    assert.ok(help.has(name!), `no HELP line before ${name}`);
    assert.ok(type.has(name!), `no TYPE line before ${name}`);
    samples.push({ name: name!, labels, value });
  }
  return { help, type, samples };
}

/** The value of the one sample of `name` whose labels include `labels`. */
export function valueOf(
  metrics: Metrics,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined {
  const found = metrics.samples.filter((sample) =>
    sample.name === name &&
    Object.entries(labels).every(([key, value]) => sample.labels[key] === value)
  );
  assert.ok(found.length <= 1, `${found.length} samples of ${name}`);
  return found[0]?.value;
}

/** Whether Debian's `promtool` (package `prometheus`) is installed here. */
export const HAS_PROMTOOL: boolean = (() => {
  try {
    return new Deno.Command("promtool", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

/** Assert that `promtool check metrics` accepts `text` (lint problems included). */
export async function assertPromtoolAccepts(text: string): Promise<void> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const output = await child.output();
  const said = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, `promtool check metrics: ${said}`);
  assert.equal(said.trim(), "", `promtool check metrics: ${said}`);
}

import assert from "node:assert/strict";
import { assertMirrored, runMirror, runOnce, withWork } from "../helpers.ts";
import { VERSION } from "../../lib/core/version.ts";

Deno.test("cli: --help lists every flag with its default and exits 0", async () => {
  await withWork(async (work) => {
    const result = await runMirror(["--help"], work);
    assert.equal(result.code, 0);
    assert.equal(result.stderr, "");
    for (
      const flag of [
        "--source path",
        "--replica path",
        "--log-file path",
        "--time-interval seconds",
        "\\[--source\\] .*\\[default = source\\]",
        "\\[--replica\\] .*\\[default = replica\\]",
        "\\[--log-file\\] .*\\[default = log.txt\\]",
        "\\[--time-interval\\] .*\\[default = 10\\]",
        "--once",
        "--version",
      ]
    ) {
      assert.match(result.stdout.replace(/\n\s+/g, " "), new RegExp(flag));
    }
  });
});

Deno.test("cli: --version prints the version", async () => {
  await withWork(async (work) => {
    const result = await runMirror(["--version"], work);
    assert.equal(result.code, 0);
    assert.equal(result.stdout.trim(), VERSION);
  });
});

Deno.test("cli: the version is the one deno.json publishes", () => {
  const config = JSON.parse(Deno.readTextFileSync(new URL("../../deno.json", import.meta.url)));
  assert.equal(config.version, VERSION);
});

const badInputs: [string[], RegExp][] = [
  [["--bogus"], /No flag registered for --bogus/],
  [["--sourc", "x"], /No flag registered for --sourc, did you mean --source\?/],
  [["--time-interval", "abc"], /--time-interval "abc": expected a number of seconds/],
  [["--time-interval", "0"], /--time-interval "0": expected at least 0\.05 seconds/],
  [["--time-interval", "1e-9"], /--time-interval "1e-9": expected at least 0\.05 seconds/],
  [["--time-interval", "0x10"], /--time-interval "0x10": expected a number of seconds/],
  [["--time-interval", "-1"], /--time-interval "-1": expected a number of seconds/],
  [["--time-interval", ""], /--time-interval "": expected a number of seconds/],
  [["--source", "a", "--source", "b"], /--source was given twice \(see --help\)\.$/],
  [["--once", "--once"], /--once was given twice \(see --help\)\.$/],
  [
    ["--exclude", "a", "b"],
    /unexpected argument 'b': each pattern needs its own --exclude \(--exclude a --exclude b\)/,
  ],
  [
    ["--time_interval", "3"],
    /No flag registered for --time_interval, did you mean --time-interval\?/,
  ],
  [["--time-interval"], /Expected input for flag --time-interval/],
  [["--source"], /Expected input for flag --source/],
  [["stray"], /unexpected argument 'stray'/],
  [["--log-format", "xml"], /"xml" .*one of \(text\|json\)/],
  [["--bwlimit", "fast"], /--bwlimit "fast": expected a rate such as 500 \(KiB\/s\)/],
  [["--bwlimit", "0.1"], /--bwlimit "0.1": expected at least 512 bytes per second/],
  [["--source", "missing", "--replica", "rep"], /--source: cannot use 'missing'/],
  [["--source", "src", "--replica", "afile"], /--replica: 'afile' exists and is not a folder/],
  [["--source", "afile", "--replica", "rep"], /--source: 'afile' is not a folder/],
  [["--source", "src", "--replica", "rep", "--log-file", "no/such/dir/log.txt"], /--log-file/],
  [
    ["--source", "src", "--replica", "rep", "--log-file", "-"],
    /--log-file -: with no log file, the state file needs a path: give --state-file/,
  ],
  [
    ["--source", "src", "--replica", "rep", "--exclude-from", "missing"],
    /--exclude-from: cannot use 'missing': No such file or directory/,
  ],
  [
    ["--exclude-from", "a", "b"],
    /unexpected argument 'b': each file needs its own --exclude-from/,
  ],
];

for (const [args, message] of badInputs) {
  Deno.test(`cli: bad input ${JSON.stringify(args)} -> one line on stderr, exit 2, nothing touched`, async () => {
    await withWork(async (work) => {
      await Deno.writeTextFile(`${work}/afile`, "keep");
      const before = [...Deno.readDirSync(work)].map((e) => e.name).sort();
      const result = await runMirror(["--once", ...args], work);
      assert.equal(result.code, 2);
      assert.equal(result.stdout, "");
      const lines = result.stderr.split("\n").filter((line) => line !== "");
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0]!, /^folder-mirror: /);
      assert.match(lines[0]!, message);
      assert.doesNotMatch(result.stderr, /\bat .*\.ts:\d+/); // no stack trace
      assert.deepEqual([...Deno.readDirSync(work)].map((e) => e.name).sort(), before);
      assert.equal(await Deno.readTextFile(`${work}/afile`), "keep");
    });
  });
}

Deno.test("cli: --bwlimit 1M copies 3 MiB in no less than the limit allows; --dry-run is not held", async () => {
  await withWork(async (work) => {
    // 2 MiB in one big file (copied a piece at a time), 1 MiB in 1,100 small ones (a batch).
    const big = new Uint8Array(2 << 20);
    for (let at = 0; at < big.length; at += 65536) {
      crypto.getRandomValues(big.subarray(at, at + 65536));
    }
    await Deno.writeFile(`${work}/src/big.bin`, big);
    await Deno.mkdir(`${work}/src/small`);
    for (let i = 0; i < 1100; i++) {
      await Deno.writeFile(`${work}/src/small/${i}`, big.subarray(i * 953, (i + 1) * 953));
    }
    const dry = performance.now();
    const dryRun = await runOnce(work, "--bwlimit", "1K", "--dry-run");
    assert.equal(dryRun.code, 0, dryRun.stderr);
    assert.ok(performance.now() - dry < 2500, "a dry run writes nothing: nothing to wait for");
    const started = performance.now();
    const result = await runOnce(work, "--bwlimit", "1M");
    const seconds = (performance.now() - started) / 1000;
    assert.equal(result.code, 0, result.stderr);
    assertMirrored(`${work}/src`, `${work}/rep`);
    // 3 MiB at 1 MiB/s, a tenth of a second's worth at once: 2.9 s at least.
    assert.ok(seconds >= 2.5, `3 MiB copied in ${seconds.toFixed(2)} s at --bwlimit 1M`);
    assert.ok(seconds < 8, `${seconds.toFixed(2)} s: far slower than the limit`);
  });
});

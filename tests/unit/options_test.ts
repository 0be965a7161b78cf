import assert from "node:assert/strict";
import { parseOptions, UsageError } from "../../lib/cli/options.ts";

Deno.test("options: defaults are the original tool's", async () => {
  const result = await parseOptions([]);
  assert.equal(result.kind, "run");
  if (result.kind !== "run") return;
  const { backend, ...rest } = result.options;
  assert.equal(backend.name, "local");
  assert.deepEqual(rest, {
    source: "source",
    replica: "replica",
    backendFlags: {},
    logFile: "log.txt",
    stateFile: "log.txt.state",
    intervalSeconds: 10,
    once: false,
    watch: false,
    dryRun: false,
    verify: false,
    logFormat: "text",
    console: "normal",
    exclude: [],
    excludeFrom: [],
    acceptEmptySource: false,
  });
  assert.ok(Object.isFrozen(result.options));
});

Deno.test("options: --exclude-from repeats, in the order given", async () => {
  const parsed = await parseOptions([
    "--exclude-from",
    "a.rules",
    "--exclude=*.tmp",
    "--exclude-from=/etc/b.rules",
  ]);
  assert.equal(parsed.kind, "run");
  if (parsed.kind !== "run") return;
  assert.deepEqual(parsed.options.excludeFrom, ["a.rules", "/etc/b.rules"]);
  assert.deepEqual(parsed.options.exclude, ["*.tmp"]);
  await assert.rejects(
    parseOptions(["--exclude-from", "a", "b"]),
    (error) =>
      error instanceof UsageError && /each file needs its own --exclude-from/.test(error.message),
  );
});

Deno.test("options: --log-file - is no log file, and then --state-file is needed", async () => {
  await assert.rejects(
    parseOptions(["--log-file", "-"]),
    (error) =>
      error instanceof UsageError &&
      error.message ===
        "--log-file -: with no log file, the state file needs a path: give --state-file.",
  );
  const parsed = await parseOptions(["--log-file", "-", "--state-file", "mirror.state"]);
  assert.equal(parsed.kind, "run");
  if (parsed.kind !== "run") return;
  assert.equal(parsed.options.logFile, undefined);
  assert.equal(parsed.options.stateFile, "mirror.state");
  // A file named "-" is still possible: ./-
  const named = await parseOptions(["--log-file", "./-"]);
  assert.equal(named.kind === "run" && named.options.logFile, "./-");
});

Deno.test("options: --status-file - and --metrics-file - are refused (a file named - is ./-)", async () => {
  for (const flag of ["--status-file", "--metrics-file"]) {
    await assert.rejects(
      parseOptions([flag, "-"]),
      (error) =>
        error instanceof UsageError &&
        error.message === `${flag} -: give a file's path (./- for a file named -).`,
    );
    const named = await parseOptions([flag, "./-"]);
    assert.equal(named.kind, "run");
  }
});

Deno.test("options: --flag=value and --flag value both work; --exclude repeats", async () => {
  const parsed = await parseOptions([
    "--source=a",
    "--replica",
    "b",
    "--time-interval=2.5",
    "--exclude=*.tmp",
    "--exclude",
    "build/",
    "--max-delete=0",
    "--log-format=json",
    "--quiet",
  ]);
  assert.equal(parsed.kind, "run");
  if (parsed.kind !== "run") return;
  const { source, replica, intervalSeconds, exclude, maxDelete, logFormat, console } =
    parsed.options;
  assert.deepEqual(
    { source, replica, intervalSeconds, exclude, maxDelete, logFormat, console },
    {
      source: "a",
      replica: "b",
      intervalSeconds: 2.5,
      exclude: ["*.tmp", "build/"],
      maxDelete: 0,
      logFormat: "json",
      console: "quiet",
    },
  );
});

Deno.test("options: fractional intervals are accepted, non-positive ones refused", async () => {
  const parsed = await parseOptions(["--time-interval", "0.25"]);
  assert.equal(parsed.kind === "run" && parsed.options.intervalSeconds, 0.25);
  for (const bad of ["0", "-3", "NaN", "Infinity", "1e400", "ten", " "]) {
    await assert.rejects(
      parseOptions(["--time-interval", bad]),
      (error) => error instanceof UsageError && error.message.includes(`"${bad}"`),
      bad,
    );
  }
});

Deno.test("options: --bwlimit takes rsync's units; 0 is no limit; bad values refused", async () => {
  const rate = async (value: string) => {
    const parsed = await parseOptions(["--bwlimit", value]);
    return parsed.kind === "run" ? parsed.options.bwlimit : "exit";
  };
  const cases: [string, number | undefined][] = [
    ["100", 100 * 1024], // a bare number is KiB/s
    ["1.5", 1536],
    ["64k", 64 * 1024],
    ["64K", 64 * 1024],
    ["1M", 1024 ** 2],
    ["1.5m", 1.5 * 1024 ** 2],
    ["2G", 2 * 1024 ** 3],
    ["1KB", 1000],
    ["10MB", 10_000_000],
    ["1gb", 1e9],
    ["2MiB", 2 * 1024 ** 2],
    [".5M", 512 * 1024],
    ["0", undefined], // no limit, as in rsync
    ["0M", undefined],
  ];
  for (const [value, expected] of cases) assert.equal(await rate(value), expected, value);
  const given = await parseOptions(["--bwlimit=1M"]);
  assert.equal(given.kind === "run" && given.options.bwlimit, 1024 ** 2);
  const none = await parseOptions([]);
  assert.ok(none.kind === "run" && !("bwlimit" in none.options));
  for (const bad of ["", "fast", "-1", "1T", "1 M", "1MBs", "0x10", "1e3", "M", "NaN"]) {
    await assert.rejects(
      parseOptions(["--bwlimit", bad]),
      (error) =>
        error instanceof UsageError &&
        error.message.startsWith(`--bwlimit "${bad}": expected a rate such as 500 (KiB/s)`),
      bad,
    );
  }
  await assert.rejects(
    parseOptions(["--bwlimit", "100B"]),
    /--bwlimit "100B": expected a rate such as/,
  );
  await assert.rejects(
    parseOptions(["--bwlimit", "0.1"]), // 102 bytes a second: below rsync's least
    /--bwlimit "0\.1": expected at least 512 bytes per second \(0: no limit\)\./,
  );
});

Deno.test("options: the replica argument chooses the backend; its flags only go with it", async () => {
  const kind = async (replica: string) => {
    const parsed = await parseOptions(["--replica", replica]);
    return parsed.kind === "run" ? parsed.options.backend.name : undefined;
  };
  assert.equal(await kind("s3://bucket/prefix"), "s3");
  assert.equal(await kind("S3://bucket"), "s3");
  assert.equal(await kind("./a:b"), "local");
  assert.equal(await kind("/srv/a:b"), "local");
  assert.equal(await kind("sftp://ann@backup:2222/srv/copy"), "sftp");
  assert.equal(await kind("ann@backup:copy"), "sftp");
  assert.equal(await kind("ann@backup:/srv/copy"), "sftp");
  const ssh = await parseOptions(["--replica", "ann@h:c", "--ssh-key", "k", "--ssh-no-exec"]);
  assert.deepEqual(ssh.kind === "run" && ssh.options.backendFlags, {
    sshKey: "k",
    sshNoExec: true,
  });
  await assert.rejects(
    () => parseOptions(["--replica", "copy", "--ssh-key", "k"]),
    /--ssh-key is only for a replica sftp:\/\/USER@HOST\[:PORT\]\/PATH or USER@HOST:PATH\./,
  );
  await assert.rejects(
    () => parseOptions(["--replica", "ann@backup:copy", "--watch"]),
    /--watch is for a local replica only \(an SSH host sends no events here\)/,
  );
  const parsed = await parseOptions(["--replica", "s3://b/p", "--s3-region", "eu-west-1"]);
  assert.deepEqual(parsed.kind === "run" && parsed.options.backendFlags, { s3Region: "eu-west-1" });
  await assert.rejects(
    () => parseOptions(["--replica", "copy", "--s3-region", "eu-west-1"]),
    /--s3-region is only for a replica s3:\/\/BUCKET\/PREFIX\./,
  );
  await assert.rejects(
    () => parseOptions(["--replica", "ftp://host/path"]),
    /--replica: 'ftp:\/\/host\/path' is not a folder here .*write \.\/ftp:\/\/host\/path for a folder/,
  );
});

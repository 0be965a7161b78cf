import assert from "node:assert/strict";
import { succeeds } from "../helpers.ts";
import { s3BenchMissing } from "../../bench/s3.ts";
import { sftpBenchMissing } from "../../bench/sftp.ts";

const BENCH = new URL("../../bench/bench.ts", import.meta.url).pathname;

Deno.test({
  name: "bench: the benchmark runs (tiny trees) and prints every scenario",
  ignore: !succeeds("rsync", "--version"), // needs rsync (apt-get install rsync)
  fn: async () => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-run",
        "--allow-net=127.0.0.1",
        "--no-prompt",
        BENCH,
        "--quick",
        "--rounds",
        "1",
        "--files",
        "500",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    const rows = stdout.split("\n").filter((line) =>
      /^\| (initial|first|unchanged|floor|1%|watch|rename)/.test(line)
    );
    assert.equal(rows.length, 14, stdout);
    for (const row of rows.filter((r) => !r.startsWith("| watch"))) {
      assert.match(row, /\d+\.\d+ x \|/);
    }
    // Against the two-thread floor of each tree, start-up, and an idle cycle's CPU.
    assert.match(stdout, /\| ratio \(median of pairs\) \| vs 2-thread floor \| target \|/);
    assert.match(
      stdout,
      /\| floor: both 400-file trees walked on two threads .* \| \d+\.\d+ x \| CPU \d+\.\d+ s \|/,
    );
    assert.match(stdout, /\| floor: both 500-file trees walked on two threads /);
    assert.match(
      stdout,
      /\| unchanged cycle, 400 files \| .* x \| -?\d+\.\d+ x \| <= 1\.0 x; floor <= 1\.15 x \|/,
    );
    assert.match(
      stdout,
      /\| unchanged cycle, 500 files \| .* x \| -?\d+\.\d+ x \| <= 1\.0 x, RSS <= 128 MiB; floor <= 1\.15 x \|/,
    );
    assert.match(
      stdout,
      /\| start-up: --once on an empty tree .* \| \d+\.\d+ s \| \d+\.\d+ s \(empty script\) \| [+-]\d+ ms \| +\| <= \+25 ms \|/,
    );
    assert.match(
      stdout,
      /\| idle cycle of a running mirror .* \| \d+\.\d+ s CPU \| \d+\.\d+ s CPU \| (\d+\.\d+ x|n\/a) \| \d+\.\d+ x \(CPU\) \| floor CPU <= 1\.0 x \|/,
    );
    assert.match(stdout, /watch mode: a new 4 KiB file three folders deep .* p95 \d+\.\d ms/);
    assert.match(stdout, /rename of a folder of 3 MiB \(50 files\): the next --once run \|/);
    assert.match(
      stdout,
      /watch mode burst: 800 files .* \| \d+\.\d\d s after the last event \| .* \| \d+ MiB \|/,
    );
    assert.match(stdout, /\| initial mirror, 500 files of ~256 B \| .* \| <= 1\.0 x \|/);
    assert.match(
      stdout,
      /state file \(the compact index on disk\), 500 files \| \d+\.\d B an entry/,
    );
    // Against rclone on a Ceph cluster, where the packages are here.
    const s3Rows = stdout.split("\n").filter((line) => line.startsWith("| S3: "));
    if (s3BenchMissing() === undefined) {
      assert.match(
        stdout,
        /\| scenario \| folder-mirror \| rclone sync --links --metadata --checksum/,
      );
      assert.equal(s3Rows.length, 6, stdout);
      for (const row of s3Rows) {
        assert.match(row, /\d+\.\d+ x \| (<= 0\.5 x|RSS <= 300 MiB) \| (\d+ MiB)? *\|$/);
      }
      assert.match(stdout, /S3: unchanged, continuous mode \(each cycle after the first\)/);
      assert.match(stdout, /S3: initial mirror, 1 file of 210 MiB \(in parts\)/);
    } else assert.equal(s3Rows.length, 0);
    // Against rsync over ssh on a throwaway sshd, where it can run.
    const sshRows = stdout.split("\n").filter((line) => line.startsWith("| SSH: "));
    if (sftpBenchMissing() === undefined) {
      assert.match(
        stdout,
        /\| scenario \| folder-mirror \| rsync -a --delete -e "ssh -p PORT -i KEY"/,
      );
      assert.equal(sshRows.length, 4, stdout);
      for (const row of sshRows) {
        assert.match(row, /\d+\.\d+ x \| <= [12]\.0 x, RSS <= 150 MiB \| \d+ MiB \|$/);
      }
    } else assert.equal(sshRows.length, 0);
  },
});

Deno.test("bench: --only refuses a group of rows it does not know (one line, exit 2)", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      "--no-prompt",
      BENCH,
      "--only",
      "bogus",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 2);
  assert.match(
    new TextDecoder().decode(output.stderr),
    /--only: one or more of small, large, huge, rename, watch, s3, ssh, floor/,
  );
});

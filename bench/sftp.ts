/**
 * The SSH rows of the benchmark: folder-mirror with its replica on an SSH
 * host against `rsync -a --delete -e "ssh -p PORT -i KEY"` into the same kind
 * of folder on the same host: a throwaway OpenSSH server on 127.0.0.1
 * (`tests/sshd.ts`, a plain user), alternating, several rounds: an initial
 * mirror of ~4 KiB files, an unchanged run, 1% changed, and an initial mirror
 * of 100 MiB files. Both tools run as users run them: one process per run.
 *
 * @module
 */
import { sftpProgramArgs } from "../tests/helpers.ts";
import { sshdMissing, startSshd } from "../tests/sshd.ts";
import { buildTree, compareRounds, rand, randomBytes, type Row, timed } from "./common.ts";

/** Why the SSH rows cannot run here, or undefined when they can. */
export function sftpBenchMissing(): string | undefined {
  return sshdMissing();
}

/**
 * Run the SSH scenarios; their rows (the `rsync` column holds rsync over ssh).
 *
 * @param options rounds, tiny trees or not, and a folder for the trees.
 * @returns the rows.
 */
export async function benchSftp(
  options: { readonly rounds: number; readonly quick: boolean; readonly base: string },
): Promise<Row[]> {
  const sizes = options.quick
    ? { small: 100, smallDirs: 4, large: 2, largeBytes: 6 << 20 }
    : { small: 2_000, smallDirs: 20, large: 5, largeBytes: 100 << 20 };
  const rounds = Math.min(options.rounds, 5);
  const rows: Row[] = [];
  const base = `${options.base}/sftp`;
  Deno.mkdirSync(`${base}/logs`, { recursive: true });
  console.error("SSH: starting sshd ...");
  const sshd = await startSshd({ user: "mirrorbench" });
  try {
    let fresh = 0;
    const target = (label: string) => `${label}-${fresh++}`;
    const tool = (source: string, name: string) =>
      timed(
        Deno.execPath(),
        sftpProgramArgs(
          sshd,
          name,
          "--source",
          source,
          "--log-file",
          `${base}/logs/${name}.log`,
          "--once",
        ),
      );
    const ssh = ["ssh", ...sshd.sshArgs().slice(0, -1)].join(" ");
    const rsync = (source: string, name: string) =>
      timed("rsync", [
        "-a",
        "--delete",
        "-e",
        ssh,
        `${source}/`,
        `127.0.0.1:${sshd.root}/${name}/`,
      ]);
    const removed = (name: string) => Deno.removeSync(`${sshd.root}/${name}`, { recursive: true });
    const compare = (
      scenario: string,
      target: string,
      round: (
        i: number,
      ) => { tool: () => ReturnType<typeof timed>; other: () => ReturnType<typeof timed> },
    ) => compareRounds(rows, scenario, target, round, rounds);

    const small = `${base}/small-src`;
    const files = buildTree(small, sizes.small, sizes.smallDirs, 4096);
    const large = `${base}/large-src`;
    Deno.mkdirSync(large);
    for (let i = 0; i < sizes.large; i++) {
      Deno.writeFileSync(`${large}/big${i}.bin`, randomBytes(sizes.largeBytes));
    }

    console.error("SSH: initial mirror, small files");
    await compare(
      `SSH: initial mirror, ${sizes.small} files of ~4 KiB`,
      "<= 1.0 x, RSS <= 150 MiB",
      () => {
        const t = target("t-init"), r = target("r-init");
        return {
          tool: () => {
            const run = tool(small, t);
            removed(t);
            return run;
          },
          other: () => {
            const run = rsync(small, r);
            removed(r);
            return run;
          },
        };
      },
    );

    const toolTarget = target("t-sync"), rsyncTarget = target("r-sync");
    tool(small, toolTarget);
    rsync(small, rsyncTarget);
    // Settled: a copy's key is kept once its source is older than the copy's second.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    tool(small, toolTarget);
    console.error("SSH: unchanged");
    await compare(`SSH: unchanged, ${sizes.small} files`, "<= 1.0 x, RSS <= 150 MiB", () => ({
      tool: () => tool(small, toolTarget),
      other: () => rsync(small, rsyncTarget),
    }));

    console.error("SSH: 1% changed");
    await compare(`SSH: 1% changed, ${sizes.small} files`, "<= 1.0 x, RSS <= 150 MiB", () => {
      for (let i = 0; i < sizes.small / 100; i++) {
        const path = `${small}/${files[rand(files.length)]}`;
        const size = rand(2) ? Deno.statSync(path).size : rand(8193);
        Deno.writeFileSync(path, randomBytes(size));
      }
      return { tool: () => tool(small, toolTarget), other: () => rsync(small, rsyncTarget) };
    });

    console.error("SSH: initial mirror, large files");
    await compare(
      `SSH: initial mirror, ${sizes.large} files of ${sizes.largeBytes >> 20} MiB`,
      "<= 2.0 x, RSS <= 150 MiB",
      () => {
        const t = target("t-large"), r = target("r-large");
        return {
          tool: () => {
            const run = tool(large, t);
            removed(t);
            return run;
          },
          other: () => {
            const run = rsync(large, r);
            removed(r);
            return run;
          },
        };
      },
    );
  } finally {
    await sshd.stop();
  }
  return rows;
}

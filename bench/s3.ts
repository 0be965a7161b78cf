/**
 * The S3 rows of the benchmark: folder-mirror with its replica in a bucket
 * against `rclone sync --links --metadata --checksum` into the same bucket,
 * on a single-node Ceph cluster started for the purpose (`tests/ceph.ts`),
 * alternating, several rounds: an initial mirror of ~4 KiB files, an
 * unchanged run, 1% changed, and an initial mirror of 100 MiB files. Both
 * tools run as users run them: one process per run.
 *
 * @module
 */
import { S3Store } from "../lib/backends/s3/store.ts";
import { cephMissing, startCeph } from "../tests/ceph.ts";
import { s3ProgramArgs } from "../tests/helpers.ts";
import {
  buildTree,
  compareRounds,
  rand,
  randomBytes,
  type Row,
  type Run,
  timed,
} from "./common.ts";

const BUCKET = "bench";

/** Why the S3 rows cannot run here, or undefined when they can. */
export function s3BenchMissing(): string | undefined {
  const ceph = cephMissing();
  if (ceph !== undefined) return ceph;
  try {
    new Deno.Command("rclone", { args: ["version"], stdout: "null", stderr: "null" })
      .outputSync();
    return undefined;
  } catch {
    return "needs rclone: apt-get install rclone";
  }
}

/**
 * Run the S3 scenarios; their rows (the `rsync` column holds rclone's time).
 *
 * @param options rounds, tiny trees or not, and a folder for the trees.
 * @returns the rows.
 */
export async function benchS3(
  options: { readonly rounds: number; readonly quick: boolean; readonly base: string },
): Promise<Row[]> {
  const sizes = options.quick
    ? { small: 100, smallDirs: 4, large: 2, largeBytes: 6 << 20, huge: 210 << 20 }
    : { small: 2_000, smallDirs: 20, large: 5, largeBytes: 100 << 20, huge: 3 * 2 ** 30 };
  const rounds = Math.min(options.rounds, 3);
  const rows: Row[] = [];
  const base = `${options.base}/s3`;
  Deno.mkdirSync(`${base}/logs`, { recursive: true });
  console.error("S3: starting a Ceph cluster ...");
  const ceph = await startCeph();
  try {
    const { endpoint, credentials } = ceph;
    const credentialsFile = `${base}/credentials`;
    Deno.writeTextFileSync(
      credentialsFile,
      `[default]\naws_access_key_id = ${credentials.accessKeyId}\n` +
        `aws_secret_access_key = ${credentials.secretAccessKey}\n`,
    );
    const bucket = new S3Store({
      endpoint,
      region: "us-east-1",
      bucket: BUCKET,
      prefix: "",
      credentials,
    });
    await bucket.createBucket();
    let fresh = 0;
    const freshPrefix = (label: string) => `${label}-${fresh++}`;
    const tool = (source: string, prefix: string) =>
      timed(
        Deno.execPath(),
        s3ProgramArgs(
          endpoint,
          "--source",
          source,
          "--replica",
          `s3://${BUCKET}/${prefix}`,
          "--s3-credentials",
          credentialsFile,
          "--log-file",
          `${base}/logs/${prefix}.log`,
          "--once",
        ),
      );
    const rclone = (source: string, prefix: string) =>
      timed("env", [
        "AWS_CA_BUNDLE=",
        "rclone",
        "--config",
        "/dev/null",
        "sync",
        "--links",
        "--metadata",
        "--checksum",
        source,
        `:s3,provider=Ceph,endpoint='${endpoint}',access_key_id=${credentials.accessKeyId},` +
        `secret_access_key=${credentials.secretAccessKey}:${BUCKET}/${prefix}`,
      ]);
    const emptied = async (prefix: string) => {
      const store = new S3Store({
        endpoint,
        region: "us-east-1",
        bucket: BUCKET,
        prefix,
        credentials,
      });
      await store.deleteMany(await store.pathsUnder(""));
    };
    const compare = (
      scenario: string,
      round: (i: number) => { tool: () => Run | Promise<Run>; other: () => Run | Promise<Run> },
    ) => compareRounds(rows, scenario, "<= 0.5 x", round, rounds);

    const small = `${base}/small-src`;
    const files = buildTree(small, sizes.small, sizes.smallDirs, 4096);
    const large = `${base}/large-src`;
    Deno.mkdirSync(large);
    for (let i = 0; i < sizes.large; i++) {
      Deno.writeFileSync(`${large}/big${i}.bin`, randomBytes(sizes.largeBytes));
    }

    console.error("S3: initial mirror, small files");
    await compare(`S3: initial mirror, ${sizes.small} files of ~4 KiB`, () => {
      const t = freshPrefix("t-init"), r = freshPrefix("r-init");
      return { tool: () => tool(small, t), other: () => rclone(small, r) };
    });

    const toolPrefix = freshPrefix("t-sync"), rclonePrefix = freshPrefix("r-sync");
    tool(small, toolPrefix);
    rclone(small, rclonePrefix);
    console.error("S3: unchanged");
    await compare(`S3: unchanged, ${sizes.small} files`, () => ({
      tool: () => tool(small, toolPrefix),
      other: () => rclone(small, rclonePrefix),
    }));

    console.error("S3: unchanged, continuous mode");
    {
      // The default mode: one process, cycle after cycle (start-up, the state
      // and the lock paid once). Timed in this process, on a Mirror made as
      // main.ts makes it (its log goes nowhere); peak RSS is not measured here.
      const { LocalTree, Mirror, MirrorState, ObjectMemory, S3Replica } = await import("../mod.ts");
      const id = `${endpoint}/${BUCKET}/${toolPrefix}`;
      const { state } = await MirrorState.open(`${base}/logs/${toolPrefix}.log.state`, {
        source: Deno.realPathSync(small),
        replica: id,
      });
      const memory = new ObjectMemory();
      state.remember(memory);
      const store = new S3Store({
        endpoint,
        region: "us-east-1",
        bucket: BUCKET,
        prefix: toolPrefix,
        credentials,
      });
      const where = `s3://${BUCKET}/${toolPrefix}`;
      const replica = new S3Replica({ store, where, id, prefixed: true, memory });
      const nothing = () => {};
      const log = { debug: nothing, info: nothing, warn: nothing, error: nothing };
      const mirror = new Mirror(new LocalTree(small), replica, {
        state,
        log: { ...log, isEnabledFor: () => false },
      });
      await mirror.cycle();
      await compare(
        `S3: unchanged, continuous mode (each cycle after the first), ${sizes.small} files`,
        () => ({
          tool: async () => {
            const started = performance.now();
            await mirror.cycle();
            return { seconds: (performance.now() - started) / 1000, rssMiB: 0 };
          },
          other: () => rclone(small, rclonePrefix),
        }),
      );
      rows.at(-1)!.rss = "";
      state.close();
    }

    console.error("S3: 1% changed");
    await compare(`S3: 1% changed, ${sizes.small} files`, () => {
      for (let i = 0; i < sizes.small / 100; i++) {
        const path = `${small}/${files[rand(files.length)]}`;
        const size = rand(2) ? Deno.statSync(path).size : rand(8193);
        Deno.writeFileSync(path, randomBytes(size));
      }
      return { tool: () => tool(small, toolPrefix), other: () => rclone(small, rclonePrefix) };
    });

    // One file above the 200 MiB cut-off: a multipart upload, memory bounded (the issue: 3 GiB
    // under 300 MiB of RSS). One round: it is slow, and the cluster keeps it in memory.
    const huge = `${base}/huge-src`;
    Deno.mkdirSync(huge);
    {
      using file = Deno.openSync(`${huge}/huge.bin`, { write: true, create: true });
      for (let at = 0; at < sizes.huge; at += 1 << 20) file.writeSync(randomBytes(1 << 20));
    }
    console.error("S3: one huge file");
    await compareRounds(
      rows,
      `S3: initial mirror, 1 file of ${sizes.huge / 2 ** 20} MiB (in parts)`,
      "RSS <= 300 MiB",
      () => {
        const t = freshPrefix("t-huge"), r = freshPrefix("r-huge");
        return {
          tool: async () => {
            const run = tool(huge, t);
            await emptied(t);
            return run;
          },
          other: async () => {
            const run = rclone(huge, r);
            await emptied(r);
            return run;
          },
        };
      },
      1,
    );
    Deno.removeSync(huge, { recursive: true });

    console.error("S3: initial mirror, large files");
    await compare(
      `S3: initial mirror, ${sizes.large} files of ${sizes.largeBytes >> 20} MiB`,
      () => {
        const t = freshPrefix("t-large"), r = freshPrefix("r-large");
        return {
          // Each copy is removed after its run: the cluster keeps objects in memory.
          tool: async () => {
            const run = tool(large, t);
            await emptied(t);
            return run;
          },
          other: async () => {
            const run = rclone(large, r);
            await emptied(r);
            return run;
          },
        };
      },
    );
  } finally {
    await ceph.stop();
  }
  return rows;
}

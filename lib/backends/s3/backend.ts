/**
 * The S3 backend: `--replica s3://BUCKET[/PREFIX]` (the scheme in any case,
 * as in URLs), with its flags. Its modules (`setup.ts` and what it loads) are
 * loaded only when a replica is in a bucket.
 *
 * @module
 */
import { reason } from "../../core/error.ts";
import type { Backend, Note, OpenRun, ReplicaSession } from "../../engine/backend.ts";
import type { MirrorLog } from "../../engine/report.ts";
import type { MirrorState } from "../../state/state.ts";
import type { BucketLock } from "./lock.ts";
import type { S3Connection } from "./setup.ts";

/** The S3 backend; see the module documentation. */
export const s3Backend: Backend = {
  name: "s3",
  form: "s3://BUCKET/PREFIX",
  claims: (replica) => /^s3:\/\//i.test(replica),
  flags: {
    s3Endpoint: {
      brief: "S3 endpoint URL, path-style (default: AWS's endpoint of --s3-region)",
      placeholder: "url",
    },
    s3Region: {
      brief: "S3 region requests are signed for (default: us-east-1)",
      placeholder: "region",
    },
    s3Credentials: {
      brief: "AWS shared-credentials file (default: the AWS_* environment variables)",
      placeholder: "path",
      path: true,
    },
    s3Profile: { brief: "its profile (section) (default: default)", placeholder: "name" },
  },
  noWatch: "a bucket sends no events",
  async open(replica, flags, run) {
    const setup = await import("./setup.ts");
    const text = (name: string) =>
      typeof flags[name] === "string" ? flags[name] as string : undefined;
    const endpoint = text("s3Endpoint"), credentialsFile = text("s3Credentials");
    const connection = await setup.connectS3({
      replica,
      ...(endpoint === undefined ? {} : { endpoint }),
      region: text("s3Region") ?? "us-east-1",
      ...(credentialsFile === undefined ? {} : { credentialsFile }),
      profile: text("s3Profile") ?? "default",
    });
    const backup = run.backupDir === undefined
      ? undefined
      : { ...setup.backupPrefix(run.backupDir, connection.location), where: run.backupDir };
    return new S3Session(
      setup,
      connection,
      replica,
      run,
      backup,
    );
  },
};

/** A run's hold on a replica in a bucket: its lock object, taken once the state is open. */
class S3Session implements ReplicaSession {
  readonly id: string;
  readonly watchable = false;
  readonly #setup: typeof import("./setup.ts");
  readonly #connection: S3Connection;
  readonly #given: string;
  readonly #readOnly: boolean;
  readonly #run: OpenRun;
  #lock: BucketLock | undefined;
  readonly backupWithin?: string;
  readonly #backupDir: { prefix: string; where: string } | undefined;

  constructor(
    setup: typeof import("./setup.ts"),
    connection: S3Connection,
    given: string,
    run: OpenRun,
    backup?: { prefix: string; within?: string; where: string },
  ) {
    if (backup !== undefined) {
      this.#backupDir = { prefix: backup.prefix, where: backup.where };
      if (backup.within !== undefined) this.backupWithin = backup.within;
    }
    this.#setup = setup;
    this.#connection = connection;
    this.#given = given;
    this.#readOnly = run.dryRun || run.verify;
    this.#run = run;
    this.id = connection.id;
  }

  verifyTree() {
    const tree = this.#setup.bucketTree(this.#connection, this.#given);
    // What the bucket cannot hold is left out, as a cycle leaves it out.
    return { tree, refuses: tree.refuses.bind(tree), links: false, owners: false };
  }

  async take(state: MirrorState): Promise<readonly Note[] | string> {
    if (this.#readOnly) return [];
    const taken = await this.#setup.takeBucket(this.#connection, state, this.#run.intervalSeconds);
    if (typeof taken === "string") return `--replica: '${this.#given}' ${taken}.`;
    this.#lock = taken.lock;
    const notes: Note[] = [];
    if (taken.lock.takenOver !== undefined) {
      notes.push({
        level: "warn",
        message: "The lock of replica {path} was taken over ({holder}); it was deleted.",
        properties: { action: "lock", path: this.#given, holder: taken.lock.takenOver },
      });
    }
    if (taken.created) {
      notes.push({
        level: "info",
        message: "Replica folder {path} has been created.",
        properties: { action: "mkdir", path: this.#given },
      });
    }
    return notes;
  }

  replica(state: MirrorState, log: MirrorLog) {
    return this.#setup.bucketReplica(this.#connection, this.#given, {
      state,
      log,
      readOnly: this.#readOnly,
      ...(this.#lock ? { lock: this.#lock } : {}),
      ...(this.#backupDir ? { backupDir: this.#backupDir } : {}),
      ...(this.#run.rate ? { rate: this.#run.rate } : {}),
    });
  }

  async close(): Promise<void> {
    await this.#lock?.release().catch((error) => {
      throw new Error(`the replica's lock could not be released (${reason(error)})`);
    });
  }
}

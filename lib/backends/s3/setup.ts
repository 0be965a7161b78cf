/**
 * From the command line to an S3 replica: `--replica s3://BUCKET/PREFIX`,
 * the endpoint and region, and the credentials, found without prompting
 * (the `AWS_*` environment variables where `--allow-env` grants them, or an
 * AWS shared-credentials file). Every failure is one line naming the flag.
 *
 * @module
 */
import { asError, reason } from "../../core/error.ts";
import type { Rate } from "../../core/rate.ts";
import type { MirrorLog } from "../../engine/report.ts";
import { type S3Credentials, S3Store } from "./store.ts";
import { BucketLock, lockKey } from "./lock.ts";
import { ObjectMemory } from "./memory.ts";
import { S3Replica } from "./replica.ts";
import type { MirrorState } from "../../state/state.ts";

/** A replica's lock in a bucket lasts this long at least unless renewed. */
const LOCK_TTL_MS = 120_000;

/** The scheme of a replica in a bucket. */
export const S3_SCHEME = "s3://";

/** Where a replica in a bucket is. */
export interface S3Location {
  /** The bucket. */
  readonly bucket: string;
  /** The key prefix (`""`: the whole bucket), without slashes at its ends. */
  readonly prefix: string;
}

/**
 * The bucket and prefix of `s3://BUCKET/PREFIX`.
 *
 * @param url the `--replica` value.
 * @returns the bucket and prefix.
 * @throws {Error} with a one-line message when it is not a valid bucket URL.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseS3Url } from "./setup.ts";
 * assert.deepEqual(parseS3Url("s3://backup/home/alice/"), { bucket: "backup", prefix: "home/alice" });
 * assert.deepEqual(parseS3Url("s3://backup"), { bucket: "backup", prefix: "" }); // the whole bucket
 * assert.throws(() => parseS3Url("s3://backup/a//b"), /empty/);
 * assert.throws(() => parseS3Url("s3://A_B"), /bucket name/);
 * ```
 */
export function parseS3Url(url: string): S3Location {
  const rest = url.slice(S3_SCHEME.length);
  const slash = rest.indexOf("/");
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const prefix = slash < 0 ? "" : rest.slice(slash + 1).replace(/^\/+|\/+$/g, "");
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new Error(
      `'${bucket}' is not a bucket name (3-63 characters: lowercase letters, digits, '.' and '-')`,
    );
  }
  if (prefix !== "" && prefix.split("/").some((part) => ["", ".", ".."].includes(part))) {
    throw new Error(`the prefix '${prefix}' has an empty, '.' or '..' part`);
  }
  return { bucket, prefix };
}

/** The environment variables credentials are read from. */
const ENV_NAMES = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] as const;

/**
 * The credentials: from the shared-credentials `file` (section `profile`)
 * when one is given, else from the environment where it may be read without
 * asking.
 *
 * @param file `--s3-credentials`, if given.
 * @param profile `--s3-profile`.
 * @returns the credentials.
 * @throws {Error} with a one-line message naming what is missing.
 */
export async function s3Credentials(
  file: string | undefined,
  profile: string,
): Promise<S3Credentials> {
  if (file !== undefined) {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (error) {
      throw new Error(`--s3-credentials: cannot read '${file}': ${reason(asError(error))}`);
    }
    // Loaded only here: it costs ~40 ms, and most runs do not read such a file.
    const { parse } = await import("npm:ini@^7.0.0");
    const section = parse(text)[profile];
    const id = section?.aws_access_key_id, secret = section?.aws_secret_access_key;
    if (typeof id !== "string" || typeof secret !== "string" || id === "" || secret === "") {
      throw new Error(
        `--s3-credentials: '${file}' has no aws_access_key_id and aws_secret_access_key ` +
          `in the profile [${profile}]`,
      );
    }
    const token = section.aws_session_token;
    return {
      accessKeyId: id,
      secretAccessKey: secret,
      ...(typeof token === "string" && token !== "" ? { sessionToken: token } : {}),
    };
  }
  const value = (name: string) =>
    Deno.permissions.querySync({ name: "env", variable: name }).state === "granted"
      ? Deno.env.get(name)
      : undefined;
  const [id, secret, token] = ENV_NAMES.map(value);
  if (!id || !secret) {
    throw new Error(
      "no S3 credentials: give --s3-credentials FILE, or AWS_ACCESS_KEY_ID and " +
        `AWS_SECRET_ACCESS_KEY with --allow-env=${ENV_NAMES.join(",")}`,
    );
  }
  return { accessKeyId: id, secretAccessKey: secret, ...(token ? { sessionToken: token } : {}) };
}

/** The S3 flags of a run. */
export interface S3Flags {
  /** `--replica s3://...`. */
  readonly replica: string;
  /** `--s3-endpoint` (default: AWS's endpoint of the region). */
  readonly endpoint?: string;
  /** `--s3-region`. */
  readonly region: string;
  /** `--s3-credentials`. */
  readonly credentialsFile?: string;
  /** `--s3-profile`. */
  readonly profile: string;
}

/** What {@link connectS3} sets up. */
export interface S3Connection {
  /** The bucket and prefix, through the S3 API. */
  readonly store: S3Store;
  /** Where it is. */
  readonly location: S3Location;
  /** The endpoint used. */
  readonly endpoint: string;
  /** The replica's identity: endpoint, bucket and prefix (the state file's pair). */
  readonly id: string;
  /** Where its lock object goes: the bucket without a prefix, and the key. */
  readonly lock: { readonly store: S3Store; readonly key: string };
  /** Whether the bucket existed when it was reached. */
  readonly existed: boolean;
}

/**
 * Check the flags and credentials and reach the endpoint once.
 *
 * @param flags the S3 flags.
 * @returns the store and where it is.
 * @throws {Error} with a one-line message naming the flag at fault.
 */
export async function connectS3(flags: S3Flags): Promise<S3Connection> {
  let location: S3Location;
  try {
    location = parseS3Url(flags.replica);
  } catch (error) {
    throw new Error(`--replica: ${asError(error).message}`);
  }
  const endpoint = (flags.endpoint ?? `https://s3.${flags.region}.amazonaws.com`)
    .replace(/\/+$/, "");
  let url: URL;
  try {
    url = new URL(endpoint);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("not http(s)");
  } catch {
    throw new Error(`--s3-endpoint: '${endpoint}' is not an http:// or https:// URL`);
  }
  const credentials = await s3Credentials(flags.credentialsFile, flags.profile);
  const store = new S3Store({
    endpoint,
    region: flags.region,
    bucket: location.bucket,
    prefix: location.prefix,
    credentials,
    // Only the first contact: a gateway that is not there is said at once.
    retries: 1,
  });
  let existed: boolean;
  try {
    existed = await store.bucketExists();
  } catch (error) {
    const why = reason(asError(error));
    if (asError(error).name === "S3Error") {
      const hint = (error as { status?: number }).status === 403
        ? ": check the access key and secret (--s3-credentials and --s3-profile, or the " +
          "AWS_* variables) and that they may use this bucket"
        : "";
      throw new Error(
        `--replica: the endpoint refused bucket '${location.bucket}' (${why})${hint}`,
      );
    }
    throw new Error(`--s3-endpoint: cannot reach ${endpoint} (${why})`);
  }
  const at = { endpoint, region: flags.region, bucket: location.bucket, credentials };
  return {
    store: new S3Store({ ...at, prefix: location.prefix }),
    lock: {
      store: new S3Store({ ...at, prefix: "" }),
      key: lockKey(location.prefix),
    },
    location,
    endpoint,
    id: `${endpoint}/${location.bucket}/${location.prefix}`,
    existed,
  };
}

/**
 * `--backup-dir` for a replica in a bucket: a prefix of the same bucket.
 *
 * @param given `--backup-dir` as given.
 * @param replica where the replica is.
 * @returns the backup folder's prefix, and its path relative to the
 *   replica's root when it lies inside it.
 * @throws {Error} a one-line message naming the flag.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backupPrefix } from "./setup.ts";
 * const replica = { bucket: "backup", prefix: "home" };
 * assert.deepEqual(backupPrefix("s3://backup/old", replica), { prefix: "old" });
 * assert.deepEqual(backupPrefix("s3://backup/home/.bak", replica), {
 *   prefix: "home/.bak",
 *   within: ".bak",
 * });
 * assert.throws(() => backupPrefix("s3://other/old", replica), /same bucket/);
 * ```
 */
export function backupPrefix(
  given: string,
  replica: S3Location,
): { prefix: string; within?: string } {
  let location: S3Location;
  try {
    location = parseS3Url(given);
  } catch (error) {
    throw new Error(`--backup-dir: ${asError(error).message}`);
  }
  if (location.bucket !== replica.bucket) {
    throw new Error(
      `--backup-dir: '${given}' is not in the replica's bucket (give s3://${replica.bucket}/PREFIX: ` +
        "the same bucket, where objects are copied without leaving the store)",
    );
  }
  const prefix = location.prefix;
  if (prefix === replica.prefix) throw new Error(`--backup-dir: '${given}' is the replica itself`);
  if (prefix === "") {
    throw new Error(
      `--backup-dir: '${given}' is the whole bucket: give a prefix (s3://BUCKET/PREFIX)`,
    );
  }
  if (replica.prefix === "") return { prefix, within: prefix };
  return prefix.startsWith(`${replica.prefix}/`)
    ? { prefix, within: prefix.slice(replica.prefix.length + 1) }
    : { prefix };
}

/**
 * The replica in a bucket as `--verify` reads it: every object's content read
 * back, nothing written.
 *
 * @param connection from {@link connectS3}.
 * @param where `--replica` as given.
 * @returns the tree.
 */
export function bucketTree(connection: S3Connection, where: string): S3Replica {
  return new S3Replica({
    store: connection.store,
    where,
    id: connection.id,
    prefixed: connection.location.prefix !== "",
    readOnly: true,
    readBack: true,
  });
}

/**
 * Take the bucket for a run that writes: make it if missing, and take the
 * replica's lock (see `s3_lock.ts`).
 *
 * @param connection from {@link connectS3}.
 * @param state the run's state (its run id; an earlier run's lock is taken over).
 * @param intervalSeconds `--time-interval` (the lock outlives three of them).
 * @returns the lock held, and whether the bucket was made; or why the run
 *   must not start, as a sentence (without its final period).
 */
export async function takeBucket(
  connection: S3Connection,
  state: MirrorState,
  intervalSeconds: number,
): Promise<{ lock: BucketLock; created: boolean } | string> {
  const ttl = Math.max(LOCK_TTL_MS, 3 * intervalSeconds * 1000);
  const lock = new BucketLock(connection.lock.store, connection.lock.key, state.runId, ttl);
  let created = false;
  try {
    // The lock is in the bucket: the bucket is made first.
    if (!connection.existed && !await connection.store.bucketExists()) {
      await connection.store.createBucket();
      created = true;
    }
    const held = await lock.acquire((runId) => state.isEarlierRun(runId));
    if (held === undefined) return { lock, created };
    return `is being written by another mirror (${held})`;
  } catch (error) {
    return `cannot take the replica's lock (${reason(asError(error))})`;
  }
}

/**
 * The replica in a bucket a mirroring run writes: what it learns of its
 * objects is kept in the state; its lock is renewed as each cycle opens it and
 * in between.
 *
 * @param connection from {@link connectS3}.
 * @param where `--replica` as given.
 * @param run the state, the log, whether it writes, the lock it holds, `--bwlimit`.
 * @returns the replica.
 */
export function bucketReplica(
  connection: S3Connection,
  where: string,
  run: {
    readonly state: MirrorState;
    readonly log: MirrorLog;
    readonly readOnly: boolean;
    readonly lock?: BucketLock;
    /** `--backup-dir`'s prefix in the bucket, and as given. */
    readonly backupDir?: { readonly prefix: string; readonly where: string };
    readonly rate?: Rate;
  },
): S3Replica {
  const memory = new ObjectMemory();
  run.state.remember(memory);
  const { lock, log } = run;
  lock?.keep((error) =>
    log.error("The replica's lock could not be renewed ({reason}).", {
      action: "lock",
      reason: reason(error),
    })
  );
  return new S3Replica({
    store: connection.store,
    where,
    id: connection.id,
    prefixed: connection.location.prefix !== "",
    memory,
    readOnly: run.readOnly,
    ...(run.rate ? { rate: run.rate } : {}),
    ...(lock ? { beforeCycle: () => lock.renewIfDue() } : {}),
    ...(run.backupDir ? { backupDir: { ...run.backupDir, bucket: connection.lock.store } } : {}),
    onAbortedUpload: (path) =>
      log.info("Incomplete upload of {path} left by an earlier run has been aborted.", {
        action: "abort",
        path,
      }),
  });
}

/**
 * The S3 calls a replica in a bucket needs, for one bucket and key prefix:
 * list one folder, put, head, get and delete objects, a conditional put. It is
 * the transport under the S3 replica (issue #13), tested on a real Ceph
 * cluster (`radosgw`); the mapping of a tree onto objects sits above it.
 *
 * - Requests are signed with AWS Signature V4 by `aws4fetch`; one that fails
 *   on the network or with a 5xx or 429 status is retried with exponential
 *   backoff (`p-retry`). Only network access to the endpoint is needed.
 * - At most {@link S3Options.inFlight} requests are in flight (`p-limit`);
 *   `fetch` keeps connections alive.
 * - Paths are the tree's (`a/b.txt`); the key is the prefix plus the path.
 *   Every byte of a key is percent-encoded as SigV4 wants it, and listings ask
 *   for URL-encoded keys, so any name round-trips.
 *
 * @module
 */
import { AwsClient } from "npm:aws4fetch@^1.0.20";
import { parse as parseNodes, stringify, type TNode } from "npm:txml@^6.0.3/txml";
import pLimit from "npm:p-limit@^7.3.0";
import pRetry from "npm:p-retry@^9.0.0";
import type { Rate } from "../../core/rate.ts";

/** Credentials for the endpoint. */
export interface S3Credentials {
  /** The access key id. */
  readonly accessKeyId: string;
  /** The secret access key. */
  readonly secretAccessKey: string;
  /** A session token (temporary credentials). */
  readonly sessionToken?: string;
}

/** Where and how {@link S3Store} talks to a bucket. */
export interface S3Options {
  /** The endpoint, e.g. `http://127.0.0.1:7480` (path-style addressing). */
  readonly endpoint: string;
  /** The region signed for. */
  readonly region: string;
  /** The bucket. */
  readonly bucket: string;
  /** The key prefix of the tree (`""`, or a path such as `backups/home`). */
  readonly prefix: string;
  /** The credentials. */
  readonly credentials: S3Credentials;
  /**
   * Requests in flight at most.
   *
   * @default 32
   */
  readonly inFlight?: number;
  /**
   * Parts of multipart uploads sent at once, over all uploads (each part is
   * streamed from disk: none is held in memory).
   *
   * @default 6
   */
  readonly partsInFlight?: number;
  /**
   * Retries of a request that fails on the network or with a 5xx or 429 status.
   *
   * @default 4
   */
  readonly retries?: number;
}

/** One object of a folder listing. */
export interface S3Object {
  /** Its name in the folder (the key without the folder's prefix). */
  readonly name: string;
  /** Size in bytes. */
  readonly size: number;
  /** The ETag, without quotes (the MD5 in hex for a single-part upload). */
  readonly etag: string;
  /** When it was last written (epoch ms). */
  readonly lastModified: number;
}

/** One folder of the tree as the bucket lists it. */
export interface S3Folder {
  /** The objects directly in it, in key order (its own marker `dir/` left out). */
  readonly objects: readonly S3Object[];
  /** The names of the folders below it (common prefixes), in key order —
   * the order of `name/`, so `a b` before `a`: not `compareNames` order. */
  readonly folders: readonly string[];
  /** Whether the folder's own marker object (`dir/`) exists. */
  readonly marker: boolean;
}

/** What {@link S3Store.head} found. */
export interface S3Head {
  /** Size in bytes. */
  readonly size: number;
  /** The ETag, without quotes. */
  readonly etag: string;
  /** When it was last written (epoch ms). */
  readonly lastModified: number;
  /** Its user metadata (`x-amz-meta-NAME`, by lowercase NAME). */
  readonly meta: Readonly<Record<string, string>>;
}

/** A request the store refused: its HTTP status and S3 error code. */
export class S3Error extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** The S3 error code (`NoSuchKey`, `PreconditionFailed`, ...), or `""`. */
  readonly code: string;

  /**
   * A refusal, as the store answered it.
   *
   * @param status the HTTP status.
   * @param code the S3 error code.
   * @param message what the store said.
   */
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "S3Error";
    this.status = status;
    this.code = code;
  }
}

/** The endpoint could not be reached (refused, reset, timed out). */
export class S3Unreachable extends Error {
  /**
   * A request that got no answer.
   *
   * @param message what the network said.
   */
  constructor(message: string) {
    super(message);
    this.name = "S3Unreachable";
  }
}

/** One attempt of a request gives up after this long. */
const ATTEMPT_MS = 120_000;
/** S3's most parts in one upload. */
const MAX_PARTS = 10_000;
/** S3's least part size (all parts but the last). */
const MIN_PART = 5 << 20;
/** The largest object S3 copies in one request. */
const COPY_LIMIT = 5 * 2 ** 30;
/** Files up to this size are one PUT; bigger ones a multipart upload in
 * parts of it (bigger parts for files above 78 GiB). */
export const DEFAULT_PART = 8 << 20;

/** Characters XML 1.0 cannot hold (a key with one is deleted on its own). */
// deno-lint-ignore no-control-regex
const XML_UNSAFE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;
/** Keys deleted per DeleteObjects request at most (S3's limit). */
const DELETE_BATCH = 1000;
const LIST_ARRAYS = new Set(["Contents", "CommonPrefixes", "Deleted", "Error", "Upload"]);

/** Plain data from XML: elements by name (those that repeat in a list, arrays), text as text. */
// deno-lint-ignore no-explicit-any
type Xml = Record<string, any>;

/**
 * The store's XML answer as plain data (a listing of 1,000 objects parses in
 * ~1 ms with txml, ~19 with fast-xml-parser 5): each element by its name, its
 * text as text (entities decoded); the elements of {@link LIST_ARRAYS} always
 * as arrays.
 */
function parseXml(text: string): Xml {
  const toData = (nodes: readonly (TNode | string)[]): Xml | string => {
    // An element's text is kept as it is (a key may end in a space); the
    // layout between elements (all whitespace) is not text of anything.
    if (nodes.every((node) => typeof node === "string")) return nodes.join("");
    const data: Xml = {};
    for (const node of nodes) {
      if (typeof node === "string") continue;
      const value = toData(node.children);
      if (LIST_ARRAYS.has(node.tagName)) (data[node.tagName] ??= []).push(value);
      else data[node.tagName] = value;
    }
    return data;
  };
  const data = toData(
    parseNodes(text, { decodeEntities: true, skipXmlDeclaration: true, keepWhitespace: true }),
  );
  return typeof data === "string" ? {} : data;
}

/** A request's XML body: `<tag>` holding `children` (elements, or text escaped). */
function element(tag: string, ...children: (TNode | string)[]): TNode {
  return { tagName: tag, attributes: {}, children };
}

/** The bytes of an XML request body. */
function xmlBody(root: TNode): Uint8Array<ArrayBuffer> {
  // Whitespace kept (a key may end in a space); a carriage return written as a
  // reference, or the parser on the other side would read it as a newline.
  const text = stringify(root, { encodeEntities: true, keepWhitespace: true })
    .replace(/\r/g, "&#13;");
  return new TextEncoder().encode(text);
}

/**
 * One bucket and prefix, through the S3 API; see the module documentation.
 *
 * @example
 * ```ts ignore
 * import { S3Store } from "./store.ts";
 * const store = new S3Store({
 *   endpoint: "http://127.0.0.1:7480", region: "us-east-1", bucket: "backup", prefix: "home",
 *   credentials: { accessKeyId: "AK", secretAccessKey: "SK" },
 * });
 * await store.put("notes/a.txt", new TextEncoder().encode("hi"), { mtime: "1700000000.5" });
 * const { objects } = await store.list("notes");
 * console.log(objects.map((o) => [o.name, o.size, o.etag]));
 * ```
 */
export class S3Store {
  readonly #client: AwsClient;
  readonly #base: string;
  readonly #prefix: string;
  readonly #limit: ReturnType<typeof pLimit>;
  readonly #retries: number;
  readonly #region: string;
  /** A request failed on the network after all its retries, and none has
   * been answered since. */
  #unreachable = false;
  /** Parts sent at once, over all uploads. */
  readonly #partSlots: ReturnType<typeof pLimit>;

  /**
   * The bucket and prefix of `options`; nothing is sent until asked.
   *
   * @param options where and how; see {@link S3Options}.
   */
  constructor(options: S3Options) {
    this.#client = new AwsClient({
      ...options.credentials,
      service: "s3",
      region: options.region,
      retries: 0, // retried here, network errors included
    });
    this.#retries = options.retries ?? 4;
    this.#region = options.region;
    this.#base = `${options.endpoint.replace(/\/+$/, "")}/${encodeKey(options.bucket)}`;
    const prefix = options.prefix.replace(/^\/+|\/+$/g, "");
    this.#prefix = prefix === "" ? "" : `${prefix}/`;
    this.#limit = pLimit(options.inFlight ?? 32);
    this.#partSlots = pLimit(options.partsInFlight ?? 6);
  }

  /** The key of the tree's `path` (`""`: the root, the prefix itself). */
  key(path: string): string {
    return this.#prefix + path;
  }

  /** Make the bucket; one that exists already and is ours is fine. */
  async createBucket(): Promise<void> {
    // Outside us-east-1, AWS wants the region said again in the body.
    const body = this.#region === "us-east-1" ? undefined : xmlBody(element(
      "CreateBucketConfiguration",
      element("LocationConstraint", this.#region),
    ));
    const response = await this.#send("PUT", this.#base, body ? { body } : {});
    if (response.ok) return void await response.body?.cancel();
    const error = await errorOf(response);
    if (error.code !== "BucketAlreadyOwnedByYou") throw error;
  }

  /**
   * Whether the bucket exists (and may be listed with these credentials).
   *
   * @returns true when it does, false when there is no such bucket.
   * @throws {S3Error} for any other answer (no access, a bad signature).
   */
  async bucketExists(): Promise<boolean> {
    const response = await this.#send("HEAD", `${this.#base}/`);
    await response.body?.cancel();
    if (response.status === 404) return false;
    if (!response.ok) {
      throw new S3Error(response.status, "", `HEAD bucket: ${response.status}`);
    }
    return true;
  }

  /**
   * Every object at or below the folder `dir`, at any depth (all pages).
   *
   * @param dir the folder's path (`""`: the whole tree).
   * @returns their tree paths (`dir/` for a folder's marker), in key order.
   */
  async pathsUnder(dir: string): Promise<string[]> {
    return (await this.objectsUnder(dir)).map((object) => object.path);
  }

  /**
   * {@link pathsUnder}, with each object's size.
   *
   * @param dir the folder's path (`""`: the whole tree).
   * @returns their tree paths and sizes, in key order.
   */
  async objectsUnder(dir: string): Promise<{ path: string; size: number }[]> {
    const prefix = dir === "" ? this.#prefix : `${this.key(dir)}/`;
    const paths: { path: string; size: number }[] = [];
    let token: string | undefined;
    do {
      const query = new URLSearchParams({ "list-type": "2", "encoding-type": "url", prefix });
      if (token !== undefined) query.set("continuation-token", token);
      const response = await this.#send("GET", `${this.#base}?${query}`);
      if (!response.ok) throw await errorOf(response);
      const result = parseXml(await response.text()).ListBucketResult ?? {};
      for (const item of result.Contents ?? []) {
        paths.push({
          path: decodeKey(item.Key).slice(this.#prefix.length),
          size: Number(item.Size),
        });
      }
      token = result.IsTruncated === "true" ? result.NextContinuationToken : undefined;
    } while (token !== undefined);
    return paths;
  }

  /**
   * The objects and subfolders of the folder `dir` (all pages of the listing).
   *
   * @param dir the folder's path (`""`: the root).
   * @returns its objects and folder names, in key order.
   */
  async list(dir: string): Promise<S3Folder> {
    const prefix = dir === "" ? this.#prefix : `${this.key(dir)}/`;
    const objects: S3Object[] = [], folders: string[] = [];
    let marker = false;
    let token: string | undefined;
    do {
      const query = new URLSearchParams({
        "list-type": "2",
        delimiter: "/",
        "encoding-type": "url",
        prefix,
      });
      if (token !== undefined) query.set("continuation-token", token);
      const response = await this.#send("GET", `${this.#base}?${query}`);
      if (!response.ok) throw await errorOf(response);
      const result = parseXml(await response.text()).ListBucketResult ?? {};
      for (const item of result.Contents ?? []) {
        const key = decodeKey(item.Key);
        if (key === prefix) {
          marker = true;
          continue;
        }
        objects.push({
          name: key.slice(prefix.length),
          size: Number(item.Size),
          etag: unquote(item.ETag ?? ""),
          lastModified: Date.parse(item.LastModified),
        });
      }
      for (const item of result.CommonPrefixes ?? []) {
        folders.push(decodeKey(item.Prefix).slice(prefix.length, -1));
      }
      token = result.IsTruncated === "true" ? result.NextContinuationToken : undefined;
    } while (token !== undefined);
    return { objects, folders, marker };
  }

  /**
   * Write the object at `path` in one request.
   *
   * @param path the tree path (`dir/` with a trailing slash: a folder marker).
   * @param body the content.
   * @param meta user metadata (`x-amz-meta-NAME` headers).
   * @param options `ifNoneMatch`: only when no object is there (else an
   *   {@link S3Error} with status 412); `md5`: the content's MD5 (hex), sent
   *   as `Content-MD5` for the store to check (default: computed here).
   * @returns the new object's ETag, without quotes.
   */
  async put(
    path: string,
    body: Uint8Array<ArrayBuffer>,
    meta: Readonly<Record<string, string>> = {},
    options: { readonly ifNoneMatch?: boolean; readonly md5?: string } = {},
  ): Promise<string> {
    const headers: Record<string, string> = {
      "content-length": String(body.length),
      // The store checks what it got against it: a body damaged on the way is refused.
      "content-md5": options.md5 === undefined
        ? await md5Base64(body)
        : Uint8Array.fromHex(options.md5).toBase64(),
    };
    for (const [name, value] of Object.entries(meta)) headers[`x-amz-meta-${name}`] = value;
    if (options.ifNoneMatch) headers["if-none-match"] = "*";
    const response = await this.#send("PUT", this.#url(path), {
      headers,
      body,
      idempotent: !options.ifNoneMatch,
    });
    if (!response.ok) throw await errorOf(response);
    await response.body?.cancel();
    return unquote(response.headers.get("etag") ?? "");
  }

  /**
   * What the object at `path` is, with its metadata.
   *
   * @param path the tree path.
   * @returns the object, or undefined when there is none.
   */
  async head(path: string): Promise<S3Head | undefined> {
    const response = await this.#send("HEAD", this.#url(path));
    if (response.status === 404) return undefined;
    if (!response.ok) throw new S3Error(response.status, "", `HEAD ${path}: ${response.status}`);
    return headOf(response);
  }

  /**
   * Replace the user metadata of the object at `path` (a copy onto itself;
   * the content stays).
   *
   * @param path the tree path.
   * @param meta the new user metadata (all of it).
   * @returns the object's ETag and last-modified time (epoch ms) now.
   */
  async setMeta(
    path: string,
    meta: Readonly<Record<string, string>>,
  ): Promise<{ etag: string; lastModified: number }> {
    const headers: Record<string, string> = { "x-amz-metadata-directive": "REPLACE" };
    for (const [name, value] of Object.entries(meta)) headers[`x-amz-meta-${name}`] = value;
    return await this.#copyObject(path, path, headers);
  }

  /**
   * Copy the object at `from` to `to` on the server, its metadata with it
   * (no byte passes through the program): one request up to `limit` bytes
   * (S3 copies at most 5 GiB so), else a multipart copy of `partSize` parts.
   *
   * @param from the tree path of the object.
   * @param to where the copy goes.
   * @param size the object's size.
   * @param options the largest single copy (default 5 GiB) and the part size
   *   of bigger ones (default 512 MiB; at least S3's 5 MiB).
   * @returns the copy's ETag and last-modified time (epoch ms; NaN: not told).
   */
  async copy(
    from: string,
    to: string,
    size: number,
    options: { readonly limit?: number; readonly partSize?: number } = {},
  ): Promise<{ etag: string; lastModified: number }> {
    if (size <= (options.limit ?? COPY_LIMIT)) {
      return await this.#copyObject(from, to, { "x-amz-metadata-directive": "COPY" });
    }
    const head = await this.head(from);
    if (head === undefined) throw new Deno.errors.NotFound(`${from}: no such object`);
    const partSize = Math.max(MIN_PART, options.partSize ?? 512 << 20, Math.ceil(size / MAX_PARTS));
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(head.meta)) headers[`x-amz-meta-${name}`] = value;
    const created = await this.#send("POST", `${this.#url(to)}?uploads`, {
      headers,
      idempotent: false,
    });
    if (!created.ok) throw await errorOf(created);
    const uploadId = String(
      parseXml(await created.text()).InitiateMultipartUploadResult?.UploadId ?? "",
    );
    if (uploadId === "") throw new S3Error(created.status, "", `no upload id for ${to}`);
    try {
      const count = Math.ceil(size / partSize);
      // Every part has ended before the upload is aborted (one in flight could outlive it).
      const settled = await Promise.allSettled(
        Array.from({ length: count }, (_, part) =>
          this.#partSlots(async () => {
            const start = part * partSize, end = Math.min(size, start + partSize) - 1;
            const url = `${this.#url(to)}?partNumber=${part + 1}&uploadId=${
              encodeURIComponent(uploadId)
            }`;
            const response = await this.#send("PUT", url, {
              headers: {
                "x-amz-copy-source": this.#copySource(from),
                "x-amz-copy-source-range": `bytes=${start}-${end}`,
              },
            });
            const text = await response.text();
            const result = response.ok ? parseXml(text) : undefined;
            if (result === undefined || result.Error) {
              throw await errorOf(
                new Response(text, { status: response.ok ? 500 : response.status }),
              );
            }
            return String(result.CopyPartResult?.ETag ?? "");
          })),
      );
      const rejected = settled.find((result) => result.status === "rejected");
      if (rejected) throw (rejected as PromiseRejectedResult).reason;
      const etags = settled.map((result) => (result as PromiseFulfilledResult<string>).value);
      const body = xmlBody(element(
        "CompleteMultipartUpload",
        ...etags.map((etag, i) =>
          element("Part", element("PartNumber", String(i + 1)), element("ETag", etag))
        ),
      ));
      const target = `${this.#url(to)}?uploadId=${encodeURIComponent(uploadId)}`;
      const done = await this.#send("POST", target, { body, idempotent: false });
      const text = await done.text();
      if (!done.ok || parseXml(text).Error) {
        throw await errorOf(new Response(text, { status: done.ok ? 500 : done.status }));
      }
    } catch (error) {
      await this.abortUpload(to, uploadId).catch(() => {});
      throw error;
    }
    const copied = await this.head(to);
    return { etag: copied?.etag ?? "", lastModified: copied?.lastModified ?? NaN };
  }

  /** `x-amz-copy-source` for the object at `path`. */
  #copySource(path: string): string {
    const bucket = this.#base.slice(this.#base.lastIndexOf("/") + 1);
    return `/${bucket}/${encodeKey(this.key(path))}`;
  }

  /** One CopyObject request (`headers`: its directive and metadata). */
  async #copyObject(
    from: string,
    to: string,
    headers: Readonly<Record<string, string>>,
  ): Promise<{ etag: string; lastModified: number }> {
    const response = await this.#send("PUT", this.#url(to), {
      headers: { ...headers, "x-amz-copy-source": this.#copySource(from) },
    });
    const text = await response.text();
    const result = response.ok ? parseXml(text) : undefined;
    // A copy can fail with a 200 and an error in its body.
    if (result === undefined || result.Error) {
      throw await errorOf(new Response(text, { status: response.ok ? 500 : response.status }));
    }
    return {
      etag: unquote(String(result.CopyObjectResult?.ETag ?? "")),
      lastModified: Date.parse(String(result.CopyObjectResult?.LastModified ?? "")),
    };
  }

  /**
   * A small object's content and metadata, in one request.
   *
   * @param path the tree path.
   * @returns its bytes and what {@link head} would say, or undefined when there is none.
   */
  async read(path: string): Promise<(S3Head & { body: Uint8Array }) | undefined> {
    const response = await this.#send("GET", this.#url(path));
    if (response.status === 404) {
      await response.body?.cancel();
      return undefined;
    }
    if (!response.ok) throw await errorOf(response);
    return { ...headOf(response), body: new Uint8Array(await response.arrayBuffer()) };
  }

  /**
   * The content of the object at `path`, as a stream.
   *
   * @param path the tree path.
   * @returns its bytes.
   * @throws {S3Error} with status 404 when there is none.
   */
  async get(path: string, signal?: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const response = await this.#send("GET", this.#url(path), {
      streamed: true,
      ...(signal ? { signal } : {}),
    });
    if (!response.ok) throw await errorOf(response);
    return response.body ?? new Blob([]).stream();
  }

  /**
   * Delete the objects at `paths`, a thousand a request (each request with
   * its `Content-MD5`, which older servers require). Gone already is fine.
   *
   * @param paths tree paths (`dir/`: a folder marker).
   * @returns those that could not be deleted, and why.
   */
  async deleteMany(
    paths: readonly string[],
  ): Promise<{ readonly path: string; readonly error: S3Error }[]> {
    // A name XML 1.0 cannot hold (a control character) is deleted on its own.
    const alone = paths.filter((path) => XML_UNSAFE.test(this.key(path)));
    const listed = paths.filter((path) => !XML_UNSAFE.test(this.key(path)));
    const batches: string[][] = [];
    for (let at = 0; at < listed.length; at += DELETE_BATCH) {
      batches.push(listed.slice(at, at + DELETE_BATCH));
    }
    const single = await Promise.all(alone.map(async (path) => {
      try {
        const response = await this.#send("DELETE", this.#url(path));
        await response.body?.cancel();
        if (response.ok || response.status === 404) return [];
        return [{ path, error: new S3Error(response.status, "", `DELETE: ${response.status}`) }];
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        return [{ path, error: error instanceof S3Error ? error : new S3Error(0, "", message) }];
      }
    }));
    const failed = await Promise.all(batches.map(async (batch) => {
      const body = xmlBody(element(
        "Delete",
        element("Quiet", "true"),
        ...batch.map((path) => element("Object", element("Key", this.key(path)))),
      ));
      const headers = {
        "content-md5": await md5Base64(body),
        "content-type": "application/xml",
      };
      let response: Response;
      try {
        response = await this.#send("POST", `${this.#base}?delete`, { headers, body });
      } catch (error) {
        const failure = error instanceof S3Error
          ? error
          : new S3Error(0, "", error instanceof Error ? error.message : String(error));
        return batch.map((path) => ({ path, error: failure }));
      }
      if (!response.ok) {
        const error = await errorOf(response);
        return batch.map((path) => ({ path, error }));
      }
      const result = parseXml(await response.text()).DeleteResult ?? {};
      return (result.Error ?? []).map((item: { Key: string; Code?: string; Message?: string }) => ({
        path: item.Key.slice(this.#prefix.length),
        error: new S3Error(200, item.Code ?? "", item.Message ?? item.Code ?? "not deleted"),
      }));
    }));
    return [...single, ...failed].flat();
  }

  /**
   * Write the object at `path` from the local file `file` of `size` bytes:
   * one PUT from memory up to `partSize`, a multipart upload above it, each
   * part read for its MD5 and then streamed from disk (at most `parts` parts
   * of this upload in flight, and {@link S3Options.partsInFlight} over all
   * uploads), so memory stays small whatever the size. A reader of
   * the bucket sees the old object or the whole new one, never a part. A
   * failed or stopped upload is aborted (nothing of it stays); one a killed
   * process left behind is found by {@link uploads}.
   *
   * @param path the tree path.
   * @param file the local file's path.
   * @param size its size (the bytes sent: a file that grew is cut there).
   * @param meta user metadata.
   * @param options part size (at least 5 MiB, S3's least) and parts in flight; `signal` stops
   *   it; `rate` (`--bwlimit`) paces the bytes sent.
   * @returns the new object's ETag (`MD5-N` for a multipart upload), without quotes.
   */
  async putFile(
    path: string,
    file: string,
    size: number,
    meta: Readonly<Record<string, string>> = {},
    options: {
      readonly partSize?: number;
      readonly parts?: number;
      readonly signal?: AbortSignal;
      readonly rate?: Rate;
    } = {},
  ): Promise<string> {
    // At most MAX_PARTS parts: a bigger file gets bigger parts.
    const partSize = Math.max(
      MIN_PART,
      options.partSize ?? DEFAULT_PART,
      Math.ceil(size / MAX_PARTS),
    );
    const inFlight = Math.max(1, options.parts ?? 4);
    using handle = await Deno.open(file, { read: true });
    // One read at a time: a seek and its read must not interleave with another's.
    const reading = pLimit(1);
    const read = (at: number, length: number, into = new Uint8Array(length)) =>
      reading(async () => {
        const bytes = into.subarray(0, length);
        await handle.seek(at, Deno.SeekMode.Start);
        for (let got = 0; got < length;) {
          const n = await handle.read(bytes.subarray(got));
          if (n === null) throw new Error(`${file}: shorter than ${size} bytes`);
          got += n;
        }
        return bytes;
      });
    if (size <= partSize) {
      const bytes = await read(0, size);
      await options.rate?.take(size, options.signal);
      return await this.put(path, bytes, meta);
    }

    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(meta)) headers[`x-amz-meta-${name}`] = value;
    const created = await this.#send("POST", `${this.#url(path)}?uploads`, {
      headers,
      // Neither retried nor stopped half-way: either could leave an upload
      // nobody knows of (the signal is looked at once it is answered).
      idempotent: false,
    });
    if (!created.ok) throw await errorOf(created);
    const uploadId = String(
      parseXml(await created.text()).InitiateMultipartUploadResult?.UploadId ?? "",
    );
    if (uploadId === "") throw new S3Error(created.status, "", `no upload id for ${path}`);
    const target = `${this.#url(path)}?uploadId=${encodeURIComponent(uploadId)}`;
    try {
      const count = Math.ceil(size / partSize);
      const etags: string[] = new Array(count);
      let next = 0, failed = false;
      const { createHash } = await import("node:crypto");
      const worker = async () => {
        const chunk = new Uint8Array(1 << 20);
        while (next < count && !failed) {
          options.signal?.throwIfAborted();
          const part = next++;
          const length = Math.min(partSize, size - part * partSize);
          // A part takes one of the store's slots, whatever upload it belongs to.
          etags[part] = await this.#partSlots(async () => {
            // The part is read twice: a megabyte at a time for its MD5, then
            // streamed from disk as the request's body. No part is ever in memory.
            const at = part * partSize;
            const hash = createHash("md5");
            for (let done = 0; done < length; done += chunk.length) {
              hash.update(await read(at + done, Math.min(chunk.length, length - done), chunk));
            }
            const url = `${this.#url(path)}?partNumber=${part + 1}&uploadId=${
              encodeURIComponent(uploadId)
            }`;
            const response = await this.#send("PUT", url, {
              headers: { "content-md5": hash.digest("base64") },
              file: { path: file, start: at, size: length },
              ...(options.signal ? { signal: options.signal } : {}),
              ...(options.rate ? { rate: options.rate } : {}),
            });
            if (!response.ok) throw await errorOf(response);
            await response.body?.cancel();
            return response.headers.get("etag") ?? "";
          });
        }
      };
      // Every part worker has stopped before the upload is aborted (a part
      // still in flight could outlive the abort).
      const settled = await Promise.allSettled(
        Array.from({ length: Math.min(inFlight, count) }, () =>
          worker().catch((error) => {
            failed = true;
            throw error;
          })),
      );
      const rejected = settled.find((result) => result.status === "rejected");
      if (rejected) throw (rejected as PromiseRejectedResult).reason;
      options.signal?.throwIfAborted();
      const body = xmlBody(element(
        "CompleteMultipartUpload",
        ...etags.map((etag, i) =>
          element("Part", element("PartNumber", String(i + 1)), element("ETag", etag))
        ),
      ));
      const done = await this.#send("POST", target, { body, idempotent: false });
      const text = await done.text();
      // A complete can fail with a 200 and an error in its body.
      if (!done.ok || parseXml(text).Error) {
        throw await errorOf(new Response(text, { status: done.ok ? 500 : done.status }));
      }
    } catch (error) {
      await this.abortUpload(path, uploadId).catch(() => {});
      throw error;
    }
    // Some servers (radosgw) answer the complete without the ETag: ask for it.
    return (await this.head(path))?.etag ?? "";
  }

  /**
   * Write the object at `path` in one PUT whose body is streamed from the
   * local file `file` (its first `size` bytes), checked by the store against
   * `md5`; memory stays small whatever the size (up to S3's 5 GiB for one PUT).
   *
   * @param path the tree path.
   * @param file the local file's path.
   * @param size the bytes to send.
   * @param md5 their MD5 (hex), sent as `Content-MD5`.
   * @param meta user metadata.
   * @param options `signal` stops it; `rate` (`--bwlimit`) paces the bytes sent.
   * @returns the new object's ETag, without quotes.
   */
  async putFromFile(
    path: string,
    file: string,
    size: number,
    md5: string,
    meta: Readonly<Record<string, string>> = {},
    options: { readonly signal?: AbortSignal; readonly rate?: Rate } = {},
  ): Promise<string> {
    const headers: Record<string, string> = {
      "content-md5": Uint8Array.fromHex(md5).toBase64(),
    };
    for (const [name, value] of Object.entries(meta)) headers[`x-amz-meta-${name}`] = value;
    const response = await this.#send("PUT", this.#url(path), {
      headers,
      file: { path: file, size },
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.rate ? { rate: options.rate } : {}),
    });
    if (!response.ok) throw await errorOf(response);
    await response.body?.cancel();
    return unquote(response.headers.get("etag") ?? "");
  }

  /**
   * The multipart uploads under way (or left behind) under the prefix.
   *
   * @returns each one's tree path, id and start (epoch ms).
   */
  async uploads(): Promise<{ path: string; uploadId: string; initiated: number }[]> {
    const found: { path: string; uploadId: string; initiated: number }[] = [];
    let keyMarker: string | undefined, idMarker: string | undefined;
    do {
      const query = new URLSearchParams({
        uploads: "",
        prefix: this.#prefix,
        "encoding-type": "url",
      });
      if (keyMarker !== undefined) query.set("key-marker", keyMarker);
      if (idMarker !== undefined) query.set("upload-id-marker", idMarker);
      const response = await this.#send("GET", `${this.#base}?${query}`);
      if (!response.ok) throw await errorOf(response);
      const result = parseXml(await response.text()).ListMultipartUploadsResult ?? {};
      for (const item of result.Upload ?? []) {
        found.push({
          path: decodeKey(item.Key).slice(this.#prefix.length),
          uploadId: String(item.UploadId),
          initiated: Date.parse(item.Initiated),
        });
      }
      const more = result.IsTruncated === "true";
      keyMarker = more && result.NextKeyMarker ? decodeKey(result.NextKeyMarker) : undefined;
      idMarker = more ? result.NextUploadIdMarker : undefined;
    } while (keyMarker !== undefined);
    return found;
  }

  /**
   * Abort the multipart upload `uploadId` of `path` (its parts are dropped).
   *
   * @param path the tree path.
   * @param uploadId the upload's id.
   */
  async abortUpload(path: string, uploadId: string): Promise<void> {
    const url = `${this.#url(path)}?uploadId=${encodeURIComponent(uploadId)}`;
    const response = await this.#send("DELETE", url);
    if (!response.ok && response.status !== 404) throw await errorOf(response);
    await response.body?.cancel();
  }

  #url(path: string): string {
    return `${this.#base}/${encodeKey(this.key(path))}`;
  }

  /**
   * One request, retried with backoff on a network error, a 5xx or a 429 —
   * unless it is not `idempotent` (a conditional put, a multipart upload's
   * creation or completion: a retry after a lost answer would misreport what
   * happened). Each attempt gives up after {@link ATTEMPT_MS}; `signal` stops it.
   */
  #send(
    method: string,
    url: string,
    init: {
      headers?: Record<string, string>;
      body?: Uint8Array<ArrayBuffer>;
      /** The body is `size` bytes of this local file from `start` (default 0), streamed from disk. */
      file?: { readonly path: string; readonly start?: number; readonly size: number };
      idempotent?: boolean;
      signal?: AbortSignal;
      /** Paces the body streamed from a file (`--bwlimit`). */
      rate?: Rate;
      /** The answer's body is read later, for as long as it takes: no time limit. */
      streamed?: boolean;
    } = {},
  ): Promise<Response> {
    const attempt = async () => {
      init.signal?.throwIfAborted();
      // A body streamed from a file gets longer: as if sent at 1 MiB/s at least.
      // A paced one has no such limit (it waits for others' bytes too): its
      // connection may only stay silent that long (see `sendFile`).
      const limit = ATTEMPT_MS + (init.file ? init.file.size / 1024 : 0);
      const paced = init.file !== undefined && init.rate !== undefined;
      const timeout = init.streamed || paced ? undefined : AbortSignal.timeout(limit);
      const signals = [init.signal, timeout].filter((signal) => signal !== undefined);
      let response: Response;
      try {
        // Signed without the body (its hash is not signed: UNSIGNED-PAYLOAD), so
        // that the body is copied once, by fetch, not also by a Request of aws4fetch.
        const signed = await this.#client.sign(url, {
          method,
          ...(init.headers ? { headers: init.headers } : {}),
        });
        const signal = signals.length > 0 ? AbortSignal.any(signals) : undefined;
        response = init.file
          ? await sendFile(signed, init.file, signal, init.rate)
          : await fetch(signed.url, {
            method,
            headers: signed.headers,
            ...(init.body ? { body: init.body } : {}),
            ...(signal ? { signal } : {}),
          });
      } catch (error) {
        if (init.signal?.aborted) throw init.signal.reason;
        throw new S3Unreachable(error instanceof Error ? error.message : String(error));
      }
      this.#unreachable = false;
      if (response.status >= 500 || response.status === 429) throw await errorOf(response);
      return response;
    };
    // While the endpoint is unreachable, each request tries once: a gateway
    // gone for good costs each path one refused connection, not a backoff.
    const retries = init.idempotent === false || this.#unreachable ? 0 : this.#retries;
    return this.#limit(() =>
      pRetry(attempt, {
        retries,
        minTimeout: 100,
        factor: 2,
        randomize: true,
        ...(init.signal ? { signal: init.signal } : {}),
      }).catch((error) => {
        if (error instanceof S3Unreachable) this.#unreachable = true;
        throw error;
      })
    );
  }
}

/**
 * Send `signed` with `size` bytes of `file` from `start` as its body, streamed
 * from disk with a `Content-Length` (node's http client: Deno's `fetch` sends
 * a streamed body chunked, which S3 refuses). Loaded only when a big file is
 * sent. The answer's body is read whole (S3 answers a PUT with little).
 * With `rate`, each piece's bytes are taken from it before it is sent, and the
 * connection may stay silent {@link ATTEMPT_MS} at most, waits for the rate
 * not counted.
 */
async function sendFile(
  signed: Request,
  file: { readonly path: string; readonly start?: number; readonly size: number },
  signal: AbortSignal | undefined,
  rate?: Rate,
): Promise<Response> {
  const { path, start = 0, size } = file;
  const url = new URL(signed.url);
  const { request } = url.protocol === "https:"
    ? await import("node:https")
    : await import("node:http");
  const { createReadStream } = await import("node:fs");
  const headers: Record<string, string> = { "content-length": String(size) };
  signed.headers.forEach((value, name) => headers[name] = value);
  /** With `rate`: fires when nothing moved for {@link ATTEMPT_MS}, waits for the rate not counted. */
  let silence: ReturnType<typeof setTimeout> | undefined;
  return await new Promise<Response>((resolve, reject) => {
    const sent = request(
      url,
      { method: signed.method, headers, ...(signal ? { signal } : {}) },
      (answer) => {
        const chunks: Uint8Array<ArrayBuffer>[] = [];
        answer.on("data", (chunk: Uint8Array<ArrayBuffer>) => chunks.push(chunk));
        answer.on("error", reject);
        answer.on("end", () => {
          const got = new Headers();
          for (const [name, value] of Object.entries(answer.headers)) {
            if (value !== undefined) got.set(name, Array.isArray(value) ? value.join(", ") : value);
          }
          resolve(new Response(new Blob(chunks), { status: answer.statusCode ?? 0, headers: got }));
        });
      },
    );
    sent.on("error", reject);
    if (size === 0) return void sent.end();
    const body = createReadStream(path, {
      start,
      end: start + size - 1,
      highWaterMark: rate?.chunk ?? 1 << 20,
    });
    body.on("error", (error) => sent.destroy(error));
    if (rate === undefined) return void body.pipe(sent);
    const watch = (on: boolean) => {
      clearTimeout(silence);
      if (!on) return;
      silence = setTimeout(
        () => sent.destroy(new Error(`nothing sent or answered for ${ATTEMPT_MS / 1000} s`)),
        ATTEMPT_MS,
      );
    };
    (async () => {
      for await (const chunk of body) {
        watch(false);
        await rate.take(chunk.length, signal);
        watch(true);
        if (!sent.write(chunk)) await new Promise((resolve) => sent.once("drain", resolve));
      }
      sent.end();
    })().catch((error) => {
      body.destroy();
      sent.destroy(error);
    });
  }).finally(() => clearTimeout(silence));
}

/** What the headers of an object's HEAD or GET say of it. */
function headOf(response: Response): S3Head {
  const meta: Record<string, string> = {};
  for (const [name, value] of response.headers) {
    if (name.startsWith("x-amz-meta-")) meta[name.slice("x-amz-meta-".length)] = value;
  }
  return {
    size: Number(response.headers.get("content-length") ?? 0),
    etag: unquote(response.headers.get("etag") ?? ""),
    lastModified: Date.parse(response.headers.get("last-modified") ?? ""),
    meta,
  };
}

/** The MD5 of `bytes`, in base64 (a `Content-MD5` header). */
async function md5Base64(bytes: Uint8Array): Promise<string> {
  const { createHash } = await import("node:crypto");
  return createHash("md5").update(bytes).digest("base64");
}

/** A key as a URL path: every byte but the unreserved ones and `/` percent-encoded. */
function encodeKey(key: string): string {
  return encodeURIComponent(key)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%2F/g, "/");
}

/** A key from a listing asked with `encoding-type=url`. */
function decodeKey(key: string): string {
  return decodeURIComponent(String(key).replace(/\+/g, " "));
}

function unquote(etag: string): string {
  return etag.replace(/^"|"$/g, "");
}

/** The error a failed response stands for (its body's S3 error code and message). */
async function errorOf(response: Response): Promise<S3Error> {
  const text = await response.text();
  let code = "", message = "";
  try {
    const error = parseXml(text).Error?.[0] ?? {};
    code = String(error.Code ?? "");
    message = String(error.Message ?? "");
  } catch {
    // not XML: the status says it
  }
  return new S3Error(
    response.status,
    code,
    `${response.status}${code ? ` ${code}` : ""}${message ? `: ${message}` : ""}`,
  );
}

/**
 * Reading folders of a local tree, on this thread or ahead of time on a
 * second one, as rsync's receiver lists the destination while its sender
 * lists the source.
 *
 * {@link readFolder} reads one folder into a compact form (names joined in one
 * string, the numbers of each entry in one `Float64Array`) that crosses to
 * another thread as a couple of buffers rather than one object per entry;
 * {@link listingOf} turns it into a `Listing`. {@link FolderLister} walks a
 * whole tree on a worker ({@link walkAhead}), depth-first in the order the
 * mirror's walk lists folders, a bounded number of folders ahead of it.
 *
 * The worker's code is made from the very functions below by their source
 * text and started from a `blob:` URL (as the copy worker is): it needs no
 * read access to the program's files and no network when the program runs
 * from a URL.
 *
 * @module
 */
import { comparePaths, rank, sortNames } from "../../core/paths.ts";
import { MAX_TIMER_MS } from "../../engine/loop.ts";
import type { Entry } from "../../core/entry.ts";
import type { Listed, Listing } from "../../core/replica.ts";

/** Numbers kept per entry in {@link RawFolder.numbers}. */
const FIELDS = 10;

/** An error as it crosses threads: its class name and message. */
export interface RawError {
  /** The class name (`NotFound`, `PermissionDenied`, ... of `Deno.errors`). */
  readonly name: string;
  /** The message. */
  readonly message: string;
}

/** One folder as {@link readFolder} read it. */
export interface RawFolder {
  /** The names, sorted by `compareNames`, each followed by `"\0"`. */
  readonly names: string;
  /** Per name, in order: kind (0 file, 1 folder, 2 symlink, 3 other), size,
   * mtime, ctime, inode, mode, uid, gid, blocks (-1: unknown), link count. */
  readonly numbers: Float64Array;
  /** The targets of the symlinks, in order. */
  readonly targets: readonly string[];
  /** Names that could not be examined. */
  readonly problems: readonly { readonly name: string; readonly error: RawError }[];
}

/**
 * Read the folder `base`: its entries' names sorted, and each one's `lstat`
 * (a name gone meanwhile is left out).
 *
 * A name that is not valid UTF-8 cannot be used at all: the runtime hands it
 * back with U+FFFD in place of each bad byte, and that name does not exist on
 * disk. Such a name is a problem (so the folder counts as incompletely read),
 * as is a name listed twice (two bad names, or a bad one and a real one,
 * that read the same): it is listed once, with the entry that name has.
 *
 * @param base the folder's absolute path.
 * @returns the folder, compactly.
 * @throws {Error} when the folder cannot be read at all.
 */
export function readFolder(base: string): RawFolder {
  const all = sortNames(Array.from(Deno.readDirSync(base), (item) => item.name));
  const numbers = new Float64Array(all.length * FIELDS);
  const targets: string[] = [];
  const problems: { name: string; error: RawError }[] = [];
  let names = "";
  let at = 0;
  for (let i = 0; i < all.length; i++) {
    const name = all[i]!;
    if (all[i + 1] === name) {
      // Several names read as this one: each of the others is unusable.
      while (all[i + 1] === name) i++;
      problems.push({ name, error: { name: "InvalidData", message: NOT_UTF8_TWICE } });
    }
    const path = `${base}/${name}`;
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(path);
      if (info.isSymlink) targets.push(Deno.readLinkSync(path));
    } catch (error) {
      const notFound = error instanceof Deno.errors.NotFound;
      if (notFound && name.includes("\uFFFD")) {
        if (problems.at(-1)?.name !== name) {
          problems.push({ name, error: { name: "InvalidData", message: NOT_UTF8 } });
        }
      } else if (!notFound) {
        const { name: kind, message } = error instanceof Error
          ? error
          : { name: "Error", message: String(error) };
        problems.push({ name, error: { name: kind, message } });
      }
      continue;
    }
    names += `${name}\0`;
    numbers[at++] = info.isFile ? 0 : info.isDirectory ? 1 : info.isSymlink ? 2 : 3;
    numbers[at++] = info.size;
    numbers[at++] = info.mtime?.getTime() ?? 0;
    numbers[at++] = info.ctime?.getTime() ?? 0;
    numbers[at++] = info.ino ?? 0;
    numbers[at++] = (info.mode ?? 0) & 0o7777;
    numbers[at++] = info.uid ?? -1;
    numbers[at++] = info.gid ?? -1;
    numbers[at++] = info.blocks ?? -1;
    numbers[at++] = info.nlink ?? 1;
  }
  return { names, numbers: numbers.subarray(0, at), targets, problems };
}

/** Why a name read with U+FFFD in it cannot be used (see {@link readFolder}). */
export const NOT_UTF8 = "its name is not valid UTF-8, and the runtime (Deno) can neither " +
  "read, copy nor remove such a name (it shows U+FFFD for each bad byte); rename it";
const NOT_UTF8_TWICE = "two or more names in this folder read as this one (names that are " +
  "not valid UTF-8: the runtime (Deno) shows U+FFFD for each bad byte, and can neither read, " +
  "copy nor remove them); rename them";

const KINDS = ["file", "dir", "symlink", "other"] as const;

/**
 * An entry, made in one go with the same fields in the same order whatever
 * it is (one object shape, no temporary objects; -1: unknown).
 */
function entryOf(
  kind: Entry["kind"],
  size: number,
  mtimeMs: number,
  ctimeMs: number,
  ino: number,
  mode: number,
  uid: number,
  gid: number,
  blocks: number,
  nlink: number,
  target: string | undefined,
): Entry {
  if (uid >= 0 && gid >= 0 && blocks >= 0) {
    return target === undefined
      ? { kind, size, mtimeMs, ctimeMs, ino, mode, uid, gid, blocks, nlink }
      : { kind, size, mtimeMs, ctimeMs, ino, mode, target, uid, gid, blocks, nlink };
  }
  const entry: { -readonly [K in keyof Entry]: Entry[K] } = {
    kind,
    size,
    mtimeMs,
    ctimeMs,
    ino,
    mode,
  };
  if (target !== undefined) entry.target = target;
  if (uid >= 0) entry.uid = uid;
  if (gid >= 0) entry.gid = gid;
  if (blocks >= 0) entry.blocks = blocks;
  entry.nlink = nlink;
  return entry;
}

/**
 * The listing of a folder read by {@link readFolder}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { listingOf, readFolder } from "./lister.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/b`, "bb");
 * Deno.mkdirSync(`${dir}/a`);
 * const listing = listingOf(readFolder(dir));
 * assert.deepEqual(listing.entries.map((e) => [e.name, e.entry.kind]), [["a", "dir"], ["b", "file"]]);
 * assert.equal(listing.entries[1]?.entry.size, 2);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function listingOf(raw: RawFolder): Listing {
  const { numbers, targets } = raw;
  const entries: Listed[] = [];
  let start = 0, at = 0, link = 0;
  while (start < raw.names.length) {
    const end = raw.names.indexOf("\0", start);
    const name = raw.names.slice(start, end);
    start = end + 1;
    const kind = KINDS[numbers[at]!]!;
    entries.push({
      name,
      entry: entryOf(
        kind,
        numbers[at + 1]!,
        numbers[at + 2]!,
        numbers[at + 3]!,
        numbers[at + 4]!,
        numbers[at + 5]!,
        numbers[at + 6]!,
        numbers[at + 7]!,
        numbers[at + 8]!,
        numbers[at + 9]!,
        kind === "symlink" ? targets[link++]! : undefined,
      ),
    });
    at += FIELDS;
  }
  return {
    entries,
    problems: raw.problems.map(({ name, error }) => ({ name, error: errorOf(error) })),
  };
}

/**
 * The error an error crossing threads stood for (a `Deno.errors` class
 * where its name is one).
 *
 * @param raw the error's name and message.
 * @returns the error.
 */
export function errorOf(raw: RawError): Error {
  const classes = Deno.errors as unknown as Record<string, ErrorConstructor | undefined>;
  const error = new (classes[raw.name] ?? Error)(raw.message);
  if (!(raw.name in classes)) error.name = raw.name;
  return error;
}

/** What the read-ahead worker is told. */
export type AheadRequest =
  /** Walk the tree at `start` (an absolute path) from its folders `dirs`, in order. */
  | { readonly start: string; readonly dirs: readonly string[]; readonly generation: number }
  /** So many folders and entries sent were used: walk on. */
  | { readonly credit: readonly [number, number]; readonly generation: number }
  /** The mirror's walk will not list these folders (nor anything below them). */
  | { readonly skip: readonly string[]; readonly generation: number }
  /** Stop walking. */
  | { readonly stop: true };

/** One folder the read-ahead worker read (or could not), or the end of its walk. */
export interface AheadAnswer {
  /** The walk it belongs to. */
  readonly generation: number;
  /** The folder's path relative to the root (`done`: none). */
  readonly dir: string;
  /** The walk is over: no folder follows. */
  readonly done?: true;
  /** The folder, when it could be read. */
  readonly folder?: RawFolder;
  /** Why it could not. */
  readonly error?: RawError;
}

/**
 * The read-ahead walk: lists the folders of a tree depth-first, each folder's
 * subfolders in name order before its later siblings (the order in which the
 * mirror's walk lists them), and sends each one, but stops while `limits`
 * folders or entries sent are not credited back. It pauses every few
 * folders to take in requests (a skip, a stop). Runs on the worker; made
 * from its source text, so it uses nothing but its parameters,
 * {@link readFolder}, `isBelowAny` and `FIELDS`.
 *
 * @param send sends an answer (and the buffers to transfer with it).
 * @param limits folders and entries sent and not credited yet, at most.
 * @returns the handler of the worker's requests.
 */
export function walkAhead(
  send: (answer: AheadAnswer, transfer: ArrayBuffer[]) => void,
  limits: { readonly folders: number; readonly entries: number },
): (request: AheadRequest) => void {
  let generation = 0, root = "", folders = 0, entries = 0, paused = false, ended = true;
  let stack: string[] = [];
  const skipped = new Set<string>();
  const walk = () => {
    paused = false;
    for (let listed = 0; stack.length > 0; listed++) {
      if (folders >= limits.folders || entries >= limits.entries) return;
      if (listed === 16) {
        paused = true;
        setTimeout(walk, 0);
        return;
      }
      const dir = stack.pop()!;
      if (skipped.size > 0 && isBelowAny(dir, skipped)) continue;
      const base = dir === "" ? root : root === "/" ? `/${dir}` : `${root}/${dir}`;
      folders++;
      let folder: RawFolder;
      try {
        folder = readFolder(base);
      } catch (error) {
        const { name, message } = error instanceof Error
          ? error
          : { name: "Error", message: String(error) };
        send({ generation, dir, error: { name, message } }, []);
        continue;
      }
      const names = folder.names.split("\0");
      for (let i = names.length - 2; i >= 0; i--) {
        if (folder.numbers[i * FIELDS] === 1) {
          stack.push(dir === "" ? names[i]! : `${dir}/${names[i]}`);
        }
      }
      entries += names.length - 1;
      send({ generation, dir, folder }, [folder.numbers.buffer as ArrayBuffer]);
    }
    if (!ended) send({ generation, dir: "", done: true }, []);
    ended = true;
  };
  return (request) => {
    if ("start" in request) {
      ({ generation, start: root } = request);
      stack = request.dirs.toReversed();
      folders = entries = 0;
      skipped.clear();
      ended = false;
    } else if ("credit" in request) {
      if (request.generation !== generation) return;
      folders -= request.credit[0];
      entries -= request.credit[1];
    } else if ("skip" in request) {
      if (request.generation !== generation) return;
      for (const dir of request.skip) skipped.add(dir);
    } else {
      stack = [];
      ended = true;
    }
    if (!paused) walk();
  };
}

/** The read-ahead worker's whole code. */
export function aheadSource(): string {
  return [
    ...[readFolder, sortNames, comparePaths, rank, isBelowAny, walkAhead].map(String),
    `const FIELDS = ${FIELDS};`,
    `const NOT_UTF8 = ${JSON.stringify(NOT_UTF8)};`,
    `const NOT_UTF8_TWICE = ${JSON.stringify(NOT_UTF8_TWICE)};`,
    `const handle = walkAhead((answer, transfer) => self.postMessage(answer, transfer), ${
      JSON.stringify(LIMITS)
    });`,
    "self.onmessage = (event) => handle(event.data);",
  ].join("\n");
}

/** Folders and entries read ahead at most. */
const LIMITS = { folders: 64, entries: 1 << 16 };
/** Credits are sent back in batches of this many folders (or when waiting). */
const CREDIT_BATCH = 8;
/** The worker stops after this long without use, by default. */
const IDLE_MS = 1000;

/**
 * The subfolders of a folder read by {@link readFolder}, in order.
 *
 * @param raw the folder.
 * @param prefix put before each name (the folder's path and a `/`).
 * @returns their paths.
 */
export function subfoldersOf(raw: RawFolder, prefix = ""): string[] {
  const { names, numbers } = raw;
  const found: string[] = [];
  let start = 0;
  for (let at = 0; start < names.length; at += FIELDS) {
    const end = names.indexOf("\0", start);
    if (numbers[at] === 1) found.push(prefix + names.slice(start, end));
    start = end + 1;
  }
  return found;
}

/**
 * Reads a local tree ahead of the mirror's walk, on a worker: {@link start}
 * starts a depth-first walk of the tree there, and the mirror's walk
 * {@link take}s each folder's listing when it gets there. The two walks go in
 * the same order; the worker stays a bounded number of folders ahead. A folder
 * the mirror's walk skips (one it removes, for example) is dropped once the
 * walk passes it; one it lists that the worker does not have is read by the
 * caller itself.
 *
 * A worker that cannot start or fails is given up: from then on every folder
 * is read by the caller ({@link take} answers undefined).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FolderLister } from "./lister.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.mkdirSync(`${dir}/a`);
 * Deno.writeTextFileSync(`${dir}/a/x`, "x");
 * const lister = new FolderLister();
 * lister.start(dir, ["a"]); // the root's subfolders: the caller read the root
 * assert.equal((await lister.take(dir, "a"))?.names, "x\0");
 * assert.equal(lister.take(dir, "b"), undefined); // not there: read it yourself
 * lister.close();
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class FolderLister {
  #worker: Worker | undefined;
  #failed = false;
  #generation = 0;
  /** The root of the walk under way. */
  #root: string | undefined;
  /** Folders answered and not taken yet, in the order they came (the walk's). */
  readonly #arrived = new Map<string, AheadAnswer>();
  /** Folders the worker will answer: subfolders of those taken. */
  readonly #expected = new Set<string>();
  /** Folders the caller read itself: their answers are dropped. */
  readonly #missed = new Set<string>();
  /** Folders the walk will not list (nor anything below them). */
  readonly #skipped = new Set<string>();
  /** The last folder the worker answered, and whether its walk is over. */
  #last: string | undefined;
  #done = false;
  #waiter:
    | { readonly dir: string; resolve(answer: AheadAnswer): void; reject(error: Error): void }
    | undefined;
  #credit: [number, number] = [0, 0];
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** When it was last used (`performance.now()`). */
  #lastUse = 0;
  readonly #source: string;
  readonly #lingerMs: number;

  /**
   * @param source the worker's code. Default: {@link aheadSource}.
   * @param lingerMs how long the worker stays unused before it stops (it
   *   keeps the process alive meanwhile; starting it again costs ~100 ms of
   *   CPU, a whole idle cycle's worth of 20,000 files, so a running mirror
   *   keeps it from one cycle to the next). Default: 1 s.
   */
  constructor(source: string = aheadSource(), lingerMs = IDLE_MS) {
    this.#source = source;
    this.#lingerMs = lingerMs;
  }

  /**
   * Start walking the tree at `root` on the worker, from its folders `dirs`
   * (a walk under way stops).
   *
   * @param root the tree's absolute path.
   * @param dirs folder paths relative to the root, in the walk's order (the
   *   root's subfolders, when the caller has read the root).
   */
  start(root: string, dirs: readonly string[]): void {
    this.reset();
    if (this.#failed) return;
    const worker = this.#start();
    if (worker === undefined) return;
    this.#root = root;
    for (const dir of dirs) this.#expected.add(dir);
    const request = { start: root, dirs, generation: ++this.#generation };
    worker.postMessage(request satisfies AheadRequest);
    this.#arm();
  }

  /**
   * The folder `dir`, read ahead.
   *
   * @param root the tree's absolute path.
   * @param dir the folder's path relative to the root.
   * @returns the folder read on the worker (rejects as {@link readFolder}
   *   throws, or with {@link ListerGone}: read it yourself), or undefined
   *   when the worker will not read it: read it yourself.
   */
  take(root: string, dir: string): Promise<RawFolder> | undefined {
    if (root !== this.#root || this.#worker === undefined) return undefined;
    // Listed out of the walk's order (a survey of what a removal takes):
    // read by the caller, and nothing read ahead is dropped for it.
    if (this.#skipped.size > 0 && isBelowAny(dir, this.#skipped)) return undefined;
    // What the walk passed without taking, it skipped.
    for (const [passed, answer] of this.#arrived) {
      if (comparePaths(passed, dir) >= 0) break;
      this.#arrived.delete(passed);
      this.#used(answer);
    }
    const expected = this.#expected.delete(dir);
    const answer = this.#arrived.get(dir);
    if (answer !== undefined) {
      this.#arrived.delete(dir);
      this.#arm();
      return this.#taken(answer);
    }
    const passed = this.#done || (this.#last !== undefined && comparePaths(this.#last, dir) > 0);
    if (!expected || passed) {
      // Not a folder the worker will send (any more): the caller reads it.
      this.#missed.add(dir);
      this.#arm();
      return undefined;
    }
    this.#sendCredit();
    this.#waiter?.reject(new ListerGone()); // one waiter at a time (the walk is sequential)
    return new Promise<AheadAnswer>((resolve, reject) => {
      this.#waiter = { dir, resolve, reject };
    }).then((answer) => this.#taken(answer));
  }

  /**
   * Tell the worker that the walk will not list the folders `dirs` (nor
   * anything below them): it need not read them.
   *
   * @param root the tree's absolute path.
   * @param dirs folder paths relative to the root.
   */
  skip(root: string, dirs: readonly string[]): void {
    if (root !== this.#root || dirs.length === 0) return;
    for (const dir of dirs) this.#skipped.add(dir);
    const request = { skip: dirs, generation: this.#generation };
    this.#worker?.postMessage(request satisfies AheadRequest);
  }

  /** Whether its worker runs now (started, and not stopped since). */
  get running(): boolean {
    return this.#worker !== undefined;
  }

  /** Stop the walk under way and forget what it read. */
  reset(): void {
    if (this.#root !== undefined) this.#worker?.postMessage({ stop: true } satisfies AheadRequest);
    this.#root = undefined;
    this.#generation++;
    this.#arrived.clear();
    this.#expected.clear();
    this.#missed.clear();
    this.#skipped.clear();
    this.#last = undefined;
    this.#done = false;
    this.#credit = [0, 0];
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(new ListerGone());
  }

  /** Stop the worker now. */
  close(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    this.#worker?.terminate();
    this.#worker = undefined;
    this.reset();
  }

  /** A folder taken: its subfolders are expected next. */
  #taken(answer: AheadAnswer): Promise<RawFolder> {
    this.#used(answer);
    if (answer.folder === undefined) {
      return Promise.reject(errorOf(answer.error ?? { name: "Error", message: "no answer" }));
    }
    const prefix = answer.dir === "" ? "" : `${answer.dir}/`;
    for (const dir of subfoldersOf(answer.folder, prefix)) this.#expected.add(dir);
    return Promise.resolve(answer.folder);
  }

  /** An answer taken or dropped: the worker may read that much more. */
  #used(answer: AheadAnswer): void {
    this.#credit[0]++;
    this.#credit[1] += answer.folder ? answer.folder.numbers.length / FIELDS : 0;
    if (this.#credit[0] >= CREDIT_BATCH) this.#sendCredit();
  }

  #sendCredit(): void {
    if (this.#credit[0] === 0) return;
    const request = { credit: this.#credit, generation: this.#generation } as const;
    this.#worker?.postMessage(request satisfies AheadRequest);
    this.#credit = [0, 0];
  }

  #answered(answer: AheadAnswer): void {
    if (answer.generation !== this.#generation) return;
    if (answer.done) {
      this.#done = true;
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter?.reject(new ListerGone()); // it will not come: the caller reads it
      return;
    }
    this.#last = answer.dir;
    if (this.#missed.delete(answer.dir)) return this.#used(answer);
    if (this.#skipped.size > 0 && isBelowAny(answer.dir, this.#skipped)) {
      return this.#used(answer);
    }
    const waiter = this.#waiter;
    if (waiter === undefined) {
      this.#arrived.set(answer.dir, answer);
      return;
    }
    const order = comparePaths(answer.dir, waiter.dir);
    if (order < 0) return this.#used(answer); // skipped by the walk
    this.#waiter = undefined;
    this.#arm();
    if (order === 0) return waiter.resolve(answer);
    // The worker went past it: the caller reads it.
    this.#arrived.set(answer.dir, answer);
    waiter.reject(new ListerGone());
  }

  /**
   * A worker left running keeps the process alive: it stops when unused for
   * a while. (One timer, which looks at the time of the last use when it
   * fires, rather than a new timer at every use.)
   */
  #arm(): void {
    this.#lastUse = performance.now();
    if (this.#idleTimer !== undefined) return;
    // A linger of weeks (an interval that long) is waited for in several timers.
    const after = (ms: number) => this.#idleTimer = setTimeout(check, Math.min(ms, MAX_TIMER_MS));
    const check = () => {
      const idle = performance.now() - this.#lastUse;
      const linger = this.#lingerMs;
      if (this.#waiter !== undefined) after(linger);
      else if (idle < linger) after(linger - idle);
      else {
        this.#idleTimer = undefined;
        this.close();
      }
    };
    after(this.#lingerMs);
  }

  #start(): Worker | undefined {
    if (this.#worker !== undefined) return this.#worker;
    try {
      const url = URL.createObjectURL(new Blob([this.#source], { type: "text/javascript" }));
      this.#worker = new Worker(url, { type: "module" });
      URL.revokeObjectURL(url);
    } catch {
      this.#giveUp();
      return undefined;
    }
    this.#worker.onmessage = (event) => this.#answered(event.data);
    this.#worker.onerror = (event) => {
      event.preventDefault();
      this.#giveUp();
    };
    return this.#worker;
  }

  /** The worker failed: from now on the caller reads every folder. */
  #giveUp(): void {
    this.#failed = true;
    this.close();
  }
}

/** Whether `dir` is one of `dirs` or below one of them. */
function isBelowAny(dir: string, dirs: ReadonlySet<string>): boolean {
  for (let at = dir.length; at > 0; at = dir.lastIndexOf("/", at - 1)) {
    if (dirs.has(dir.slice(0, at))) return true;
  }
  return false;
}

/** The read-ahead stopped before it read a folder: read it yourself. */
export class ListerGone extends Error {
  constructor() {
    super("the read-ahead stopped");
    this.name = "ListerGone";
  }
}

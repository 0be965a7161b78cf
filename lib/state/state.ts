/**
 * Everything the program remembers between cycles and between runs, kept in
 * one state file outside both trees (by default the log file's path with
 * `.state` appended), never in the replica:
 *
 * - the {@link PairIndex} of known-identical file pairs;
 * - the source root's identity (device, inode) and whether it held entries,
 *   for the unmount guard;
 * - the ids of runs whose temp files may still be in the replica: a temp file
 *   is recognised by its run id, never by its name alone, so a source entry of
 *   any name is mirrored;
 * - the real paths of the source and replica it belongs to;
 * - what a replica remembers of its own entries (an S3 replica: its objects'
 *   metadata, see `s3_memory.ts`), when it does.
 *
 * The file is crash-safe (`state_file.ts`) and locked for the run, so two
 * instances never share one. A state of another pair, a damaged one, or one
 * of another format is set aside (not used, replaced at the next save) with
 * a warning: the run starts fresh and hashes again; it never trusts it.
 *
 * @module
 */
import { asError, reason } from "../core/error.ts";
import { PairIndex } from "./pair_index.ts";
import { pathExists } from "../core/paths.ts";
import { fileStore, StateFile } from "./state_file.ts";
import { newRunId, runIdOf, TempNames } from "../core/temp_names.ts";

/**
 * Earlier runs' ids kept at most (a run killed before it could sweep adds
 * one); temp files of older ones are removed as ordinary extra entries.
 */
const MAX_EARLIER_RUNS = 100;
/**
 * After a run that did not end cleanly (a crash, a power cut), replica files
 * written this long before its last commit, or later, are compared by content
 * before they are trusted: the kernel writes dirty data back within ~30 s
 * (Linux's default `dirty_expire_centisecs`), so older ones reached the disk.
 */
export const RECHECK_WINDOW_MS = 60_000;
/** Bumped when the content's format changes; another format is set aside,
 * except the first, which is converted. */
const FORMAT = 4;
const LITTLE_ENDIAN = new Uint8Array(new Float64Array([1]).buffer)[7] === 0x3f;

/** The source root as last seen by a cycle that read it in full. */
export interface SourceRoot {
  /** `dev:ino` of the source root folder. */
  readonly id: string;
  /** Whether it held any entries then. */
  readonly heldEntries: boolean;
}

/** What a replica remembers between runs, kept in the state file beside the index. */
export interface Remembered {
  /** Changed since it was loaded or saved. */
  readonly dirty: boolean;
  /** It was saved. */
  saved(): void;
  /** It must be saved again (a save failed). */
  touched(): void;
  /** Its bytes, to save. */
  toBytes(): Uint8Array;
  /** Replace what it holds by what was saved. */
  load(bytes: Uint8Array): void;
}

/**
 * What every {@link Remembered} shares: whether it changed since it was
 * loaded or saved. A subclass calls {@link touched} when it changes.
 */
export abstract class RememberedBase implements Remembered {
  #dirty = false;

  /** Changed since it was loaded or saved. */
  get dirty(): boolean {
    return this.#dirty;
  }

  /** It was saved. */
  saved(): void {
    this.#dirty = false;
  }

  /** It changed, or must be saved again (a save failed). */
  touched(): void {
    this.#dirty = true;
  }

  /** Its bytes, to save. */
  abstract toBytes(): Uint8Array;

  /** Replace what it holds by what was saved. */
  abstract load(bytes: Uint8Array): void;
}

/** The real paths a state belongs to. */
export interface StatePair {
  /** The source folder's real path. */
  readonly source: string;
  /** The replica folder's real path. */
  readonly replica: string;
}

/**
 * The state file cannot be used at all (the run must not start).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MirrorState, StateFileError } from "./state.ts";
 * const dir = Deno.makeTempDirSync();
 * const pair = { source: `${dir}/src`, replica: `${dir}/rep` };
 * await assert.rejects(MirrorState.open(dir, pair), StateFileError); // a folder, not a file
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class StateFileError extends Error {
  /** Always `"StateFileError"`. */
  override name = "StateFileError";
}

/**
 * What a mirror remembers; see the module documentation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MirrorState } from "./state.ts";
 * const dir = Deno.makeTempDirSync();
 * const pair = { source: `${dir}/src`, replica: `${dir}/rep` };
 * const { state } = await MirrorState.open(`${dir}/mirror.state`, pair);
 * assert.ok(state.isTemp(state.temps.next()));
 * await state.save();
 * state.close();
 * const again = await MirrorState.open(`${dir}/mirror.state`, pair, { readOnly: true });
 * assert.equal(again.warning, undefined);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class MirrorState {
  /** Known-identical file pairs. */
  index: PairIndex;
  /** This run's id, carried by its temp names. */
  readonly runId: string;
  /** This run's temp names. */
  readonly temps: TempNames;
  /** Groups this mirror was refused to give (see `owners.ts`): not asked again. */
  readonly deniedGroups: Set<number> = new Set();
  /** Owner users were refused (root without the right to give them): not asked again. */
  #usersDenied = false;
  /** The user the denials were found for. */
  #deniedFor: number | undefined;
  /** How many of them the file holds. */
  #deniedSaved = 0;
  readonly #pair: StatePair;
  #sourceRoot: SourceRoot | undefined;
  /** Ids of earlier runs that may have left temp files. */
  #earlierRuns: Set<string>;
  #changed = true;
  /** The file holds an index (a new or set-aside file holds none yet). */
  #written = false;
  readonly #file: StateFile | undefined;
  readonly #handle: Deno.FsFile | undefined;
  /** What the replica remembers, as loaded (until it is attached). */
  #rememberedBytes: Uint8Array | undefined;
  #remembered: Remembered | undefined;
  /** How many of the last bytes of the blob on disk are the replica's memory. */
  #rememberedOnDisk = 0;
  /** This run is over and everything it wrote was handed to the kernel (see {@link close}). */
  #clean = false;
  /** See {@link recheckSince}. */
  #recheckSince: number | undefined;

  private constructor(pair: StatePair, file?: StateFile, handle?: Deno.FsFile) {
    this.#pair = pair;
    this.#file = file;
    this.#handle = handle;
    this.index = new PairIndex();
    this.#earlierRuns = new Set();
    this.runId = newRunId();
    this.temps = new TempNames(this.runId);
  }

  /**
   * A state kept in memory only (a library user's choice, or tests).
   *
   * @param pair the real paths of the source and replica it belongs to.
   * @returns a new, empty state that {@link save} never writes.
   */
  static inMemory(pair: StatePair): MirrorState {
    return new MirrorState(pair);
  }

  /**
   * Open the state file at `path` for the pair `pair`: locked and writable,
   * or read-only for a run that writes nothing (`readOnly`, a dry run). What
   * it holds is loaded; `warning` says why it was set aside, if it was.
   *
   * @param path the state file's path (made when missing, unless `readOnly`).
   * @param pair the real paths of the source and replica it belongs to.
   * @param options `readOnly`: neither lock nor write the file (default: false).
   * @returns the state; `warning`: why the file's content was set aside, if it
   * was; `older`: why its newest record could not be used, when the record
   * before it was (what the last commit recorded is lost).
   * @throws {StateFileError} when the file is in use by another running
   * mirror, is not a state file at all (it is never overwritten), or cannot
   * be opened; the message is one line, naming the path.
   */
  static async open(
    path: string,
    pair: StatePair,
    options: { readonly readOnly?: boolean } = {},
  ): Promise<{ state: MirrorState; warning?: string; older?: string }> {
    let handle: Deno.FsFile;
    const existed = pathExists(path);
    try {
      handle = options.readOnly
        ? Deno.openSync(path, { read: true })
        : Deno.openSync(path, { read: true, write: true, create: true });
    } catch (error) {
      if (options.readOnly && error instanceof Deno.errors.NotFound) {
        return { state: new MirrorState(pair) };
      }
      throw new StateFileError(`cannot open '${path}': ${reason(asError(error))}`);
    }
    try {
      if (!handle.statSync().isFile) throw new StateFileError(`'${path}' is not a file`);
      const file = new StateFile(fileStore(handle));
      if (!options.readOnly && !handle.tryLockSync(true)) {
        const pid = await runningPid(file);
        throw new StateFileError(
          `'${path}' is in use by another running mirror${
            pid === undefined ? "" : ` (pid ${pid})`
          }`,
        );
      }
      const state = new MirrorState(pair, file, options.readOnly ? undefined : handle);
      const found = await file.read();
      if (found.kind === "foreign") {
        throw new StateFileError(
          `'${path}' is not a folder-mirror state file; it is left as it is ` +
            "(give another --state-file, or remove it)",
        );
      }
      let warning: string | undefined;
      if (found.kind === "damaged") warning = `it is damaged (${found.why})`;
      else if (found.kind === "blob") warning = state.#load(found.note, found.blob);
      else if (existed && handle.statSync().size === 0) warning = "it is empty (0 bytes)";
      if (options.readOnly) handle.close();
      const older = found.kind === "blob" && warning === undefined ? found.older : undefined;
      return {
        state,
        ...(warning === undefined ? {} : { warning }),
        ...(older === undefined ? {} : { older }),
      };
    } catch (error) {
      handle.close();
      throw error;
    }
  }

  /** Load what the file held; returns why it was set aside, or undefined when it was used. */
  #load(note: Uint8Array, blob: Uint8Array): string | undefined {
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(note));
    } catch {
      return "it is damaged (unreadable header)";
    }
    const first = header.format === 1;
    // Format 2 is format 3 without a replica's memory; 3 is 4 without inodes in the index.
    if (
      (header.format !== FORMAT && header.format !== 3 && header.format !== 2 && !first) ||
      header.littleEndian !== LITTLE_ENDIAN
    ) {
      return `it has another format (${String(header.format)}, not ${FORMAT})`;
    }
    if (header.source !== this.#pair.source || header.replica !== this.#pair.replica) {
      return `it belongs to another pair of folders (${String(header.source)} -> ` +
        `${String(header.replica)}; give each pair its own --state-file or --log-file)`;
    }
    try {
      const root = header.sourceRoot as SourceRoot | null;
      const runs = header.runs as unknown[];
      if (!Array.isArray(runs)) throw new Error("no run ids");
      const remembered = typeof header.remembered === "number" ? header.remembered : 0;
      if (remembered < 0 || remembered > blob.length) throw new Error("a bad length");
      const indexBytes = blob.subarray(0, blob.length - remembered);
      this.index = first
        ? PairIndex.fromFirstFormat(indexBytes)
        : PairIndex.fromBytes(indexBytes, header.format === FORMAT);
      // An older layout is written anew at the next save, not only its note.
      if (header.format !== FORMAT) this.index.touched();
      this.#rememberedBytes = remembered > 0 ? blob.slice(blob.length - remembered) : undefined;
      this.#rememberedOnDisk = remembered;
      this.#sourceRoot = root === null
        ? undefined
        : { id: String(root.id), heldEntries: Boolean(root.heldEntries) };
      this.#earlierRuns = new Set(runs.map(String));
      const denied = Array.isArray(header.deniedGroups) ? header.deniedGroups : [];
      for (const gid of denied) if (typeof gid === "number") this.deniedGroups.add(gid);
      this.#usersDenied = header.usersDenied === true;
      // The run that wrote it did not end cleanly: what it wrote last may be
      // lost. (A check still pending from before is kept.)
      const since = [
        header.clean === false && typeof header.committedAt === "number"
          ? header.committedAt - RECHECK_WINDOW_MS
          : NaN,
        typeof header.recheckSince === "number" ? header.recheckSince : NaN,
      ].filter((time) => !Number.isNaN(time));
      if (since.length > 0) this.#recheckSince = Math.min(...since);
      this.#deniedFor = typeof header.deniedFor === "number" ? header.deniedFor : undefined;
      this.#deniedSaved = this.deniedGroups.size;
    } catch (error) {
      this.index = new PairIndex();
      return `it is damaged (${reason(asError(error))})`;
    }
    // #changed stays true: this run's id and process id are new, and are
    // recorded (a meta page, not the index) before its first temp file.
    this.#written = true;
    return undefined;
  }

  /**
   * Keep what the replica remembers in this state: it gets what was saved
   * (if anything was), and is saved with the index.
   *
   * @param remembered what the replica remembers.
   */
  remember(remembered: Remembered): void {
    this.#remembered = remembered;
    if (this.#rememberedBytes !== undefined) remembered.load(this.#rememberedBytes);
    this.#rememberedBytes = undefined;
  }

  /**
   * When the last run did not end cleanly (a crash, a power cut): replica
   * files whose ctime is this or later (epoch ms) are compared by content
   * before they are trusted (see {@link RECHECK_WINDOW_MS}); until a full
   * cycle {@link rechecked} them.
   */
  get recheckSince(): number | undefined {
    return this.#recheckSince;
  }

  /** A full cycle compared what {@link recheckSince} named. */
  rechecked(): void {
    if (this.#recheckSince === undefined) return;
    this.#recheckSince = undefined;
    this.#changed = true;
  }

  /** The source root as last seen by a full cycle, if any. */
  get sourceRoot(): SourceRoot | undefined {
    return this.#sourceRoot;
  }

  set sourceRoot(root: SourceRoot) {
    if (root.id === this.#sourceRoot?.id && root.heldEntries === this.#sourceRoot.heldEntries) {
      return;
    }
    this.#sourceRoot = root;
    this.#changed = true;
  }

  /**
   * What was refused to a mirror running as the user `uid` (the denials of
   * another user are forgotten: root may give what alice may not).
   *
   * @param uid the user the mirror runs as.
   * @returns this state's record of the denials, to read and to add to.
   */
  ownerDenials(uid: number): { usersDenied: boolean; readonly deniedGroups: Set<number> } {
    if (this.#deniedFor !== uid) {
      this.#deniedFor = uid;
      this.deniedGroups.clear();
      this.#usersDenied = false;
      this.#changed = true;
    }
    return this;
  }

  /** Owner users were refused to this mirror (it is not allowed to give them). */
  get usersDenied(): boolean {
    return this.#usersDenied;
  }

  set usersDenied(denied: boolean) {
    if (denied === this.#usersDenied) return;
    this.#usersDenied = denied;
    this.#changed = true;
  }

  /**
   * Whether `name` is a temp file of this run or an earlier one.
   *
   * @param name a replica entry's name (not a path).
   * @returns true when it is one of the program's temp files.
   */
  isTemp(name: string): boolean {
    if (this.temps.isOwn(name)) return true;
    const id = runIdOf(name);
    return id !== undefined && this.#earlierRuns.has(id);
  }

  /**
   * Whether `runId` is the id of an earlier run of this state file (one that
   * may have left temp files, or a lock, behind).
   *
   * @param runId a run id.
   * @returns true when an earlier run had it.
   */
  isEarlierRun(runId: string): boolean {
    return this.#earlierRuns.has(runId);
  }

  /**
   * A full scan of the whole replica found temp files only of the runs in
   * `remaining` (they are being removed): earlier runs with none left are
   * forgotten.
   *
   * @param remaining the names of the temp files still in the replica.
   */
  tempsSwept(remaining: Iterable<string>): void {
    const names = new Set<string>();
    for (const name of remaining) {
      const id = runIdOf(name);
      if (id !== undefined && this.#earlierRuns.has(id)) names.add(id);
    }
    if (names.size === this.#earlierRuns.size) return;
    this.#earlierRuns = names;
    this.#changed = true;
  }

  /** Whether {@link save} has anything to write. */
  get unsaved(): boolean {
    return this.#changed || this.index.dirty || this.deniedGroups.size !== this.#deniedSaved ||
      (this.#remembered?.dirty ?? false);
  }

  /**
   * Write the state if it changed since it was loaded or saved (a state in
   * memory only: nothing to do). When only the small part changed (a run id,
   * the source root), only a meta page is written, not the index. A failure
   * leaves the previous state on disk.
   *
   * @throws {Error} when it cannot be written (a full disk).
   */
  async save(): Promise<void> {
    if (this.#file === undefined || this.#handle === undefined || !this.unsaved) return;
    const remembered = this.#remembered;
    const dirty = this.index.dirty || !this.#written || (remembered?.dirty ?? false);
    const extra = dirty ? remembered?.toBytes() : undefined;
    const note = new TextEncoder().encode(JSON.stringify({
      format: FORMAT,
      littleEndian: LITTLE_ENDIAN,
      source: this.#pair.source,
      replica: this.#pair.replica,
      sourceRoot: this.#sourceRoot ?? null,
      // Who holds the file now, for a second instance's refusal.
      pid: Deno.pid,
      deniedGroups: [...this.deniedGroups],
      usersDenied: this.#usersDenied,
      deniedFor: this.#deniedFor ?? null,
      // This run's id first: it is recorded before its first temp file is made.
      runs: [this.runId, ...[...this.#earlierRuns].slice(0, MAX_EARLIER_RUNS)],
      // The replica's memory is the blob's last bytes (a note alone: the blob on disk stays).
      remembered: dirty ? extra?.length ?? 0 : this.#rememberedOnDisk,
      // Whether the run ended cleanly, and when this was committed (see RECHECK_WINDOW_MS).
      clean: this.#clean,
      committedAt: Date.now(),
      recheckSince: this.#recheckSince ?? null,
    }));
    const blob = dirty ? joined(this.index.toBytes(), extra) : undefined;
    // Marked clean before the write: a change made while it is under way
    // (a watcher's callback) marks it dirty again and is not lost.
    this.#changed = false;
    this.index.saved();
    if (dirty) remembered?.saved();
    const deniedBefore = this.#deniedSaved;
    this.#deniedSaved = this.deniedGroups.size;
    try {
      await this.#file.write(note, blob);
    } catch (error) {
      this.#changed = true;
      this.#deniedSaved = deniedBefore;
      if (dirty) {
        this.index.touched();
        remembered?.touched();
      }
      throw error;
    }
    this.#written = true;
    if (dirty) this.#rememberedOnDisk = extra?.length ?? 0;
  }

  /**
   * The run ends cleanly: everything it wrote was handed to the kernel. Saved
   * (a note), so that the next run need not compare by content what this one
   * wrote last (see {@link recheckSince}).
   *
   * @throws {Error} when it cannot be written.
   */
  async endCleanly(): Promise<void> {
    this.#clean = true;
    this.#changed = true;
    await this.save();
  }

  /** Release the lock and the file. */
  close(): void {
    try {
      this.#handle?.close();
    } catch {
      // already closed
    }
  }
}

/** `head` then `tail` (if any), as one array. */
function joined(head: Uint8Array, tail: Uint8Array | undefined): Uint8Array {
  if (tail === undefined || tail.length === 0) return head;
  const bytes = new Uint8Array(head.length + tail.length);
  bytes.set(head);
  bytes.set(tail, head.length);
  return bytes;
}

/** The process id a state file's note names (its writer records it at start). */
async function runningPid(file: StateFile): Promise<number | undefined> {
  try {
    const found = await file.read();
    if (found.kind !== "blob") return undefined;
    const pid = JSON.parse(new TextDecoder().decode(found.note)).pid;
    return typeof pid === "number" ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The process id of the running mirror that holds the state file at `path`
 * for a pair with this `replica`, if one does: the best a second instance can
 * say about who writes a replica it finds locked.
 */
export async function runningMirrorOf(path: string, replica: string): Promise<number | undefined> {
  let handle: Deno.FsFile;
  try {
    handle = Deno.openSync(path, { read: true });
  } catch {
    return undefined;
  }
  try {
    if (handle.tryLockSync(false)) return undefined; // nobody holds it
    const file = new StateFile(fileStore(handle));
    const found = await file.read();
    if (found.kind !== "blob") return undefined;
    const note = JSON.parse(new TextDecoder().decode(found.note));
    return note.replica === replica && typeof note.pid === "number" ? note.pid : undefined;
  } catch {
    return undefined;
  } finally {
    handle.close();
  }
}

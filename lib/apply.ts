/**
 * Carry out a plan on the disk. Each action ends in an {@link Outcome}; a
 * failure is data, never an exception that stops the rest.
 *
 * Files and symlinks are written under a temp name in the target's own folder
 * and renamed into place, so a reader of the replica never sees a partial file.
 *
 * @module
 */
import { type Entry, entryFromInfo, joinPath, parentOf, statKey, tempName } from "./entry.ts";
import type { Disk } from "./disk.ts";
import { asError } from "./error.ts";
import type { Action } from "./plan.ts";

/** How one action ended. */
export type Outcome =
  /** Done; `bytes` of file content copied. */
  | { readonly status: "done"; readonly action: Action; readonly bytes: number }
  /** Not done, for a reason that the next cycle resolves (the source moved on). */
  | { readonly status: "skipped"; readonly action: Action; readonly reason: string }
  /** Failed. */
  | { readonly status: "failed"; readonly action: Action; readonly error: Error };

/** Where to read and write. */
export interface Roots {
  readonly source: string;
  readonly replica: string;
}

/** Options of {@link applyPlan}. */
export interface ApplyOptions {
  /** The disk to act on. */
  readonly disk: Disk;
  /** When aborted, no further action starts. Default: never. */
  readonly signal?: AbortSignal;
  /** Called with each outcome as soon as it is known. Default: nothing. */
  readonly onOutcome?: (outcome: Outcome) => void;
}

/**
 * Apply `actions` in order. Actions under a folder that could not be created
 * are not attempted (the folder's own failure already reports it). Nothing is
 * written, created, renamed or removed through a symlink in the replica: the
 * folders above each target are checked to be real folders first.
 */
export async function applyPlan(
  actions: readonly Action[],
  roots: Roots,
  options: ApplyOptions,
): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  const failedDirs = new Set<string>();
  const realDirs = new RealDirs(roots.replica, options.disk);
  for (const action of actions) {
    if (options.signal?.aborted) break;
    if (underFailedDir(action.path, failedDirs)) continue;
    const outcome = await applyOne(action, roots, options.disk, realDirs);
    if (outcome.status === "failed" && action.op === "mkdir") failedDirs.add(action.path);
    outcomes.push(outcome);
    options.onOutcome?.(outcome);
  }
  return outcomes;
}

function underFailedDir(path: string, failedDirs: ReadonlySet<string>): boolean {
  if (failedDirs.size === 0) return false;
  for (let dir = parentOf(path); dir !== ""; dir = parentOf(dir)) {
    if (failedDirs.has(dir)) return true;
  }
  return false;
}

/**
 * Replica folders checked, during one plan, to be real folders rather than
 * symlinks (a hostile or careless replica may hold a symlink to elsewhere).
 */
class RealDirs {
  readonly #root: string;
  readonly #disk: Disk;
  readonly #verified = new Set<string>([""]);

  constructor(root: string, disk: Disk) {
    this.#root = root;
    this.#disk = disk;
  }

  /** Throw unless `dir` and every folder above it are real folders. */
  async check(dir: string): Promise<void> {
    const unchecked: string[] = [];
    for (let d = dir; !this.#verified.has(d); d = parentOf(d)) unchecked.push(d);
    for (const d of unchecked.reverse()) {
      await expectKind(this.#disk, joinPath(this.#root, d), "dir", `replica folder '${d}'`);
      this.#verified.add(d);
    }
  }

  /** `dir` was removed. */
  forget(dir: string): void {
    this.#verified.delete(dir);
  }
}

/** Throw unless `path` is (not links to) a file or folder, as `kind` says. */
async function expectKind(disk: Disk, path: string, kind: "file" | "dir", what: string) {
  const info = await disk.lstat(path);
  if (kind === "dir" ? !info.isDirectory : !info.isFile) {
    const actual = info.isSymlink ? "a symlink" : "not a " + (kind === "dir" ? "folder" : "file");
    throw new Error(`${what} is ${actual}; nothing is written through it`);
  }
}

async function applyOne(
  action: Action,
  roots: Roots,
  disk: Disk,
  realDirs: RealDirs,
): Promise<Outcome> {
  const target = joinPath(roots.replica, action.path);
  try {
    await realDirs.check(parentOf(action.path));
    switch (action.op) {
      case "remove":
        try {
          await disk.remove(target, action.kind === "dir");
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        }
        realDirs.forget(action.path);
        return done(action);
      case "mkdir":
        await disk.mkdir(target, false);
        await disk.chmod(target, action.mode);
        return done(action);
      case "chmod":
        // chmod and utime follow symlinks: check the target itself first.
        await expectKind(disk, target, "dir", "the replica entry");
        await disk.chmod(target, action.mode);
        return done(action);
      case "touch":
        await expectKind(disk, target, "file", "the replica entry");
        await setAttributes(disk, target, action.source);
        return done(action);
      case "symlink":
        await writeViaTemp(
          disk,
          roots.replica,
          action.path,
          (temp) => disk.symlink(action.target, temp),
        );
        return done(action);
      case "copy":
        return await copy(action, roots, disk);
    }
  } catch (error) {
    return { status: "failed", action, error: asError(error) };
  }
}

function done(action: Action, bytes = 0): Outcome {
  return { status: "done", action, bytes };
}

async function setAttributes(disk: Disk, path: string, source: Entry): Promise<void> {
  await disk.chmod(path, source.mode);
  await disk.utime(path, new Date(), new Date(source.mtimeMs));
}

/**
 * Create the new object under a temp name beside `path`, let `finish` check it,
 * then rename it over `path`. The temp name is removed on any failure.
 * Returns false (and removes the temp) when `finish` rejects the result.
 */
async function writeViaTemp(
  disk: Disk,
  root: string,
  path: string,
  create: (temp: string) => Promise<void>,
  finish: (temp: string) => Promise<boolean> = () => Promise.resolve(true),
): Promise<boolean> {
  const dir = parentOf(path);
  const temp = joinPath(root, dir === "" ? tempName() : `${dir}/${tempName()}`);
  try {
    await create(temp);
    if (await finish(temp)) {
      await disk.rename(temp, joinPath(root, path));
      return true;
    }
  } catch (error) {
    await removeQuietly(disk, temp);
    throw error;
  }
  await removeQuietly(disk, temp);
  return false;
}

async function copy(
  action: Extract<Action, { op: "copy" }>,
  roots: Roots,
  disk: Disk,
): Promise<Outcome> {
  const from = joinPath(roots.source, action.path);
  const expected = statKey(action.source);
  try {
    const kept = await writeViaTemp(
      disk,
      roots.replica,
      action.path,
      (temp) => disk.copyFile(from, temp),
      async (temp) => {
        await setAttributes(disk, temp, action.source);
        // A source written to while we copied must not leave a torn copy.
        return statKey(entryFromInfo(await disk.lstat(from))) === expected;
      },
    );
    if (!kept) {
      return { status: "skipped", action, reason: "it changed while being copied" };
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound && !(await exists(disk, from))) {
      return { status: "skipped", action, reason: "it vanished before it could be copied" };
    }
    throw error;
  }
  return done(action, action.source.size);
}

async function exists(disk: Disk, path: string): Promise<boolean> {
  try {
    await disk.lstat(path);
    return true;
  } catch {
    return false;
  }
}

async function removeQuietly(disk: Disk, path: string): Promise<void> {
  try {
    await disk.remove(path, false);
  } catch {
    // Already gone, or never created.
  }
}

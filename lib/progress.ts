/**
 * A live progress bar on stderr for cycles with a lot to copy: files and
 * bytes done of the total, rate and ETA. Only on a terminal (never on a pipe,
 * never in the log file), gone when the cycle ends. While it shows, console
 * log lines are printed above it. Colour only on a terminal and never when
 * `NO_COLOR` is set. `cli-progress` is loaded only when a bar is shown.
 *
 * @module
 */
import type { ConsoleTap } from "./log.ts";

/** Show a bar from this many files or bytes on. */
export const PROGRESS_FILES = 100;
export const PROGRESS_BYTES = 100 * 1000 * 1000;

/**
 * The progress of a cycle's copies, shown as a bar once there is a lot to
 * copy: the totals grow as the walk finds more (a folder-by-folder cycle
 * does not know them in advance). Console log lines go to `tap` while the
 * bar shows.
 */
export class CopyProgress {
  readonly #tap: ConsoleTap;
  #files = 0;
  #bytes = 0;
  #doneFiles = 0;
  #doneBytes = 0;
  #started = 0;
  #bar: Bar | undefined;
  #starting: Promise<void> | undefined;
  #stopped = false;

  /** @param tap where console lines go while the bar shows. */
  constructor(tap: ConsoleTap) {
    this.#tap = tap;
  }

  /**
   * One more file of `bytes` bytes to copy.
   *
   * @param bytes its size.
   */
  add(bytes: number): void {
    this.#files++;
    this.#bytes += bytes;
    if (this.#starting || this.#stopped) return this.#bar?.update(this.#state());
    if (this.#files <= PROGRESS_FILES && this.#bytes <= PROGRESS_BYTES) return;
    if (!Deno.stderr.isTerminal()) {
      this.#starting = Promise.resolve();
      return;
    }
    this.#started = performance.now();
    this.#starting = startBar(this.#tap, () => this.#state()).then((bar) => {
      if (this.#stopped) return bar.stop();
      this.#bar = bar;
      bar.update(this.#state());
    });
  }

  /**
   * A copy ended (done or not).
   *
   * @param bytes its size.
   */
  advance(bytes: number): void {
    this.#doneFiles++;
    this.#doneBytes += bytes;
    this.#bar?.update(this.#state());
  }

  /** Remove the bar (if one shows). */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#starting;
    this.#bar?.stop();
    this.#bar = undefined;
  }

  #state(): BarState {
    const seconds = Math.max(0.001, (performance.now() - this.#started) / 1000);
    return {
      files: this.#files,
      doneFiles: this.#doneFiles,
      done: humanBytes(this.#doneBytes),
      size: humanBytes(this.#bytes),
      rate: `${humanBytes(this.#doneBytes / seconds)}/s`,
    };
  }
}

interface BarState {
  readonly files: number;
  readonly doneFiles: number;
  readonly done: string;
  readonly size: string;
  readonly rate: string;
}

interface Bar {
  update(state: BarState): void;
  stop(): void;
}

/** Draw a bar on stderr (loading `cli-progress`), console lines above it. */
async function startBar(tap: ConsoleTap, now: () => BarState): Promise<Bar> {
  const [{ default: cliProgress }, { default: process }] = await Promise.all([
    import("npm:cli-progress@^3.12.0"),
    import("node:process"),
  ]);
  const bar = colour() ? "\x1b[36m{bar}\x1b[0m" : "{bar}";
  const multi = new cliProgress.MultiBar({
    stream: process.stderr,
    clearOnComplete: true,
    hideCursor: true,
    format:
      `${bar} {percentage}% | {value}/{total} files | {done}/{size} | {rate} | ETA {eta_formatted}`,
  }, cliProgress.Presets.shades_classic);
  const state = now();
  const single = multi.create(state.files, state.doneFiles, state);
  multi.update(); // draw at once, not only at the first timer tick
  tap.set((line) => multi.log(line));
  return {
    update(state) {
      single.setTotal(state.files);
      single.update(state.doneFiles, state);
    },
    stop() {
      tap.set(undefined);
      multi.stop();
    },
  };
}

/** Whether to colour: not when `NO_COLOR` is set (read only if env access is granted). */
function colour(): boolean {
  if (Deno.noColor) return false;
  const granted = Deno.permissions.querySync({ name: "env", variable: "NO_COLOR" }).state;
  return granted !== "granted" || Deno.env.get("NO_COLOR") === undefined;
}

function humanBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes, unit = 0;
  while (value >= 1000 && unit < units.length - 1) value /= 1000, unit++;
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

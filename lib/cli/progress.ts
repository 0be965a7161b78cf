/**
 * A live progress bar for cycles with a lot to copy, on stdout when stdout
 * itself is a terminal (never when it is redirected, never in the log file),
 * gone when the cycle ends. While it shows, console log lines are printed
 * above it, whole: INFO lines on stdout, WARNING and ERROR lines on stderr
 * (the bar steps aside for them). Colour only on a terminal and never when
 * `NO_COLOR` is set. `cli-progress` is loaded only when a bar is shown.
 *
 * A cycle walks folder by folder, so while the walk goes on the number of
 * files to copy is not known: the bar then shows counts only (files and bytes
 * copied, the rate); once the walk is over it shows the totals, which do not
 * move any more, the percentage and the time left.
 *
 * @module
 */
import type { ConsoleTap } from "./log.ts";

/** Show a bar from this many files or bytes on. */
export const PROGRESS_FILES = 100;
export const PROGRESS_BYTES = 100 * 1000 * 1000;

/**
 * The progress of a cycle's copies, shown as a bar once there is a lot to
 * copy; see the module documentation. Console log lines go to `tap` while
 * the bar shows.
 */
export class CopyProgress {
  readonly #tap: ConsoleTap;
  #files = 0;
  #bytes = 0;
  #doneFiles = 0;
  #doneBytes = 0;
  #started = 0;
  #known = false;
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
    if (!Deno.stdout.isTerminal()) {
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

  /** Every file to copy has been added: the totals are final. */
  known(): void {
    this.#known = true;
    this.#bar?.update(this.#state());
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
    const rate = this.#doneBytes / seconds;
    const left = rate > 0 ? (this.#bytes - this.#doneBytes) / rate : undefined;
    return {
      known: this.#known,
      files: this.#files,
      doneFiles: this.#doneFiles,
      done: humanBytes(this.#doneBytes),
      size: humanBytes(this.#bytes),
      rate: `${humanBytes(rate)}/s`,
      left: left === undefined ? "--" : duration(left),
    };
  }
}

interface BarState {
  /** The totals are final. */
  readonly known: boolean;
  readonly files: number;
  readonly doneFiles: number;
  readonly done: string;
  readonly size: string;
  readonly rate: string;
  /** The time left (not `eta`: cli-progress has its own, which it puts first). */
  readonly left: string;
}

interface Bar {
  update(state: BarState): void;
  stop(): void;
}

/** Draw a bar on stdout (loading `cli-progress`), console lines above it. */
async function startBar(tap: ConsoleTap, now: () => BarState): Promise<Bar> {
  const [{ default: cliProgress }, { default: process }] = await Promise.all([
    import("npm:cli-progress@^3.12.0"),
    import("node:process"),
  ]);
  const graphic = colour() ? "\x1b[36m{bar}\x1b[0m" : "{bar}";
  const multi = new cliProgress.MultiBar({
    stream: process.stdout,
    clearOnComplete: true,
    hideCursor: true,
    // Keep the terminal's wrapping: log lines printed above the bar stay whole
    // (the bar itself is cut to the terminal's width).
    linewrap: true,
  }, cliProgress.Presets.shades_classic);
  const counting = { format: "{doneFiles} files copied | {done} | {rate}" };
  const totals = {
    format: `${graphic} {percentage}% | {doneFiles}/{files} files | {done}/{size} | {rate} | ` +
      "{left} left",
  };
  let state = now();
  let single = multi.create(
    state.known ? state.files : 0,
    state.doneFiles,
    state,
    state.known ? totals : counting,
  );
  let known = state.known;
  multi.update(); // draw at once, not only at the first timer tick
  const stderrShared = Deno.stderr.isTerminal();
  const encoder = new TextEncoder();
  tap.set((line, toStderr) => {
    if (!toStderr) return multi.log(line);
    if (!stderrShared) return void Deno.stderr.writeSync(encoder.encode(line));
    // The same terminal: the bar steps aside for the line, then comes back below it.
    const terminal = (multi as unknown as { terminal: Terminal }).terminal;
    terminal.cursorRelativeReset();
    terminal.clearBottom();
    Deno.stderr.writeSync(encoder.encode(line));
    multi.update();
  });
  return {
    update(next) {
      state = next;
      if (next.known && !known) {
        // The totals are final from now on: a bar with them replaces the counts.
        known = true;
        multi.remove(single);
        single = multi.create(next.files, next.doneFiles, next, totals);
        return;
      }
      if (known) single.setTotal(next.files);
      single.update(next.doneFiles, next);
    },
    stop() {
      tap.set(undefined);
      multi.stop();
    },
  };
}

/** What the bar's terminal lets the program do (cli-progress's own, not in its types). */
interface Terminal {
  cursorRelativeReset(): void;
  clearBottom(): void;
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

/** Seconds as `1h02m`, `3m05s` or `42s`. */
function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s >= 3600) {
    return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
  }
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

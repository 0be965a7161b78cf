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

/** A bar being shown. */
export interface Progress {
  /** One file of `bytes` bytes is done. */
  advance(bytes: number): void;
  /** Remove the bar. */
  stop(): void;
}

/** Show a bar from this many files or bytes on. */
export const PROGRESS_FILES = 100;
export const PROGRESS_BYTES = 100 * 1000 * 1000;

/**
 * Start a bar for copying `files` files of `bytes` bytes in all, or return
 * undefined when the work is small or stderr is not a terminal. Console log
 * lines go to `tap` while it shows.
 */
export async function startProgress(
  files: number,
  bytes: number,
  tap: ConsoleTap,
): Promise<Progress | undefined> {
  if (files <= PROGRESS_FILES && bytes <= PROGRESS_BYTES) return undefined;
  if (!Deno.stderr.isTerminal()) return undefined;
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
  const started = performance.now();
  let doneBytes = 0, doneFiles = 0;
  const payload = () => ({
    done: humanBytes(doneBytes),
    size: humanBytes(bytes),
    rate: `${humanBytes(doneBytes / Math.max(0.001, (performance.now() - started) / 1000))}/s`,
  });
  const single = multi.create(files, 0, payload());
  multi.update(); // draw at once, not only at the first timer tick
  tap.set((line) => multi.log(line));
  return {
    advance(size) {
      doneFiles++;
      doneBytes += size;
      single.update(doneFiles, payload());
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

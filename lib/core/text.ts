/**
 * How times and names are written in log lines and reports: the formats the
 * log file, the console and `--verify` share.
 *
 * @module
 */

function pad(value: number, width = 2): string {
  return String(value).padStart(width, "0");
}

/**
 * Local time as `YYYY-MM-DD HH:MM:SS,mmm` (Python logging's `asctime`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatTimestamp } from "./text.ts";
 * assert.match(formatTimestamp(0), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}$/);
 * ```
 */
export function formatTimestamp(epochMs: number): string {
  const t = new Date(epochMs);
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ` +
    `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())},` +
    pad(t.getMilliseconds(), 3);
}

const ESCAPES: Readonly<Record<string, string>> = {
  "\\": "\\\\",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};

/**
 * A value as it goes into a log line: every record stays one line, and every
 * name can be told from every other. A backslash is written `\\`; a newline,
 * carriage return and tab `\n`, `\r`, `\t`; other control characters (and the
 * line and paragraph separators) `\xNN` or `\uNNNN`; U+FFFD, which the runtime
 * puts in place of the bytes of a name that is not valid UTF-8, is written
 * `\uFFFD`. So a file named
 * `a<newline>b` logs as `a\nb`, and one named `a\nb` (a backslash and an n)
 * as `a\\nb`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { printable } from "./text.ts";
 * assert.equal(printable("a\tb\nc"), "a\\tb\\nc");
 * assert.equal(printable("lit\\n"), "lit\\\\n");
 * assert.equal(printable("bell\x07"), "bell\\x07");
 * assert.equal(printable("caf\uFFFD.txt"), "caf\\uFFFD.txt");
 * ```
 */
export function printable(value: unknown): string {
  const text = typeof value === "string" ? value : String(value);
  // deno-lint-ignore no-control-regex -- matching control characters is the point
  return text.replace(/[\\\x00-\x1f\x7f-\x9f\u2028\u2029\ufffd]/g, (char) => {
    const known = ESCAPES[char];
    if (known !== undefined) return known;
    const code = char.charCodeAt(0);
    return code < 0x100
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).toUpperCase().padStart(4, "0")}`;
  });
}

/**
 * A 52-bit print of a text (FNV-1a over two 26-bit halves), never 0: a
 * number that stands for it in a stat key.
 *
 * @param text any text.
 * @returns a whole number in [1, 2^52).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { textPrint } from "./text.ts";
 * assert.equal(textPrint("7:1.5"), textPrint("7:1.5"));
 * assert.notEqual(textPrint("7:1.5"), textPrint("7:2.5"));
 * ```
 */
export function textPrint(text: string): number {
  let high = 0x811c, low = 0x9dc5;
  for (let i = 0; i < text.length; i++) {
    low ^= text.charCodeAt(i);
    const product = low * 0x193;
    low = product & 0xffff;
    high = (high * 0x193 + (product >>> 16) + (low >>> 16)) & 0xfffffff;
  }
  return high * 0x10000 + low || 1;
}

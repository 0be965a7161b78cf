/** The program's version, printed by `--version`. Kept in code (not read from
 * `deno.json`) because a run from a URL does not see `deno.json`. */
export const VERSION = "0.1.0";

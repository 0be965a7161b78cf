/**
 * The floor under any Deno mirror's unchanged cycle: a bare walk of the given
 * trees (`readDirSync` and `lstatSync` of every entry, nothing else). Used by
 * `bench.ts`.
 *
 * `deno run --allow-read bench/floor.ts TREE...`
 *
 * @module
 */
let entries = 0;
for (const root of Deno.args) {
  const pending = [root];
  for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
    for (const item of Deno.readDirSync(dir)) {
      const path = `${dir}/${item.name}`;
      Deno.lstatSync(path);
      entries++;
      if (item.isDirectory) pending.push(path);
    }
  }
}
if (entries === 0) Deno.exit(1);

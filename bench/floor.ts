/**
 * The floor under any Deno mirror's unchanged cycle: a bare walk of the given
 * trees (`readDirSync` and `lstatSync` of every entry, nothing else; symlinks
 * are never followed). Used by `bench.ts`.
 *
 * `deno run --allow-read bench/floor.ts [--threads N] TREE...`
 *
 * With `--threads N` the trees are shared out over the main thread and N - 1
 * workers (`floor_worker.ts`, started before the main thread's own walk; they
 * inherit `--allow-read`): with two trees and `--threads 2`, the main thread
 * walks the first while one worker walks the second.
 *
 * @module
 */

/** Walk `root` (`readDirSync` + `lstatSync` of every entry); the entries seen. */
export function walk(root: string): number {
  let entries = 0;
  const pending = [root];
  for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
    for (const item of Deno.readDirSync(dir)) {
      const path = `${dir}/${item.name}`;
      Deno.lstatSync(path);
      entries++;
      if (item.isDirectory) pending.push(path);
    }
  }
  return entries;
}

if (import.meta.main) {
  // No flag parser: loading one would add to the floor's own start-up.
  let roots = Deno.args, threads = 1;
  if (roots[0] === "--threads") {
    threads = Number(roots[1]);
    roots = roots.slice(2);
    if (!Number.isInteger(threads) || threads < 1) {
      console.error("--threads: a whole number, at least 1");
      Deno.exit(2);
    }
  }
  // Tree i goes to thread i % threads (thread 0: this one).
  const answers: Promise<number>[] = [];
  for (let thread = 1; thread < threads; thread++) {
    const mine = roots.filter((_, i) => i % threads === thread);
    if (mine.length === 0) continue;
    const worker = new Worker(new URL("./floor_worker.ts", import.meta.url).href, {
      type: "module",
    });
    answers.push(
      new Promise<number>((resolve, reject) => {
        worker.onmessage = (event: MessageEvent<number>) => {
          worker.terminate();
          resolve(event.data);
        };
        worker.onerror = (event) => {
          event.preventDefault();
          worker.terminate();
          reject(new Error(event.message));
        };
      }),
    );
    worker.postMessage(mine);
  }
  let entries = 0;
  roots.forEach((root, i) => {
    if (i % threads === 0) entries += walk(root);
  });
  for (const answer of answers) entries += await answer;
  if (entries === 0) Deno.exit(1);
}

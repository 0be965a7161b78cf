/** The README's promises that can be run: the quick start, as a new user types it. */
import assert from "node:assert/strict";
import { assertMirrored, logHas, waitFor } from "../helpers.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** The commands of the README's quick start. */
function quickStart(): string[] {
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  const section = readme.slice(readme.indexOf("## Quick start"));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
  return block.trim().split("\n");
}

Deno.test("README: the quick start is two commands, the mirror and the tests", () => {
  const commands = quickStart();
  assert.equal(commands.length, 2, commands.join("\n"));
  assert.match(commands[0]!, /^deno task start /);
  assert.equal(commands[1], "deno task test");
});

Deno.test("README: the quick start's first command works as written in a fresh clone", async () => {
  // A fresh clone: the tracked files only (no log, no state, no replica yet).
  const clone = await Deno.makeTempDir({ prefix: "mirror-clone-" });
  const git = (...args: string[]) =>
    new Deno.Command("git", { args, cwd: ROOT, stdout: "null", stderr: "piped" }).outputSync();
  assert.ok(git("clone", "--quiet", "--no-hardlinks", ROOT, clone).success, "git clone");
  const args = quickStart()[0]!.split(/\s+/).slice(1); // "task", "start", ...
  // Inside the clone (a fresh clone has none yet): every copy shows in the log.
  const replica = `${clone}/${args[args.indexOf("--replica") + 1]!}`;
  assert.throws(() => Deno.statSync(replica), Deno.errors.NotFound);
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: clone,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const finished = child.output();
  try {
    await waitFor("the first cycle", logHas(clone, /Cycle finished: [1-9]\d* copied/), 30_000);
    await waitFor("lib mirrored", () => {
      try {
        assertMirrored(`${clone}/lib`, replica);
        return true;
      } catch {
        return false;
      }
    }, 30_000);
  } finally {
    child.kill("SIGINT"); // Ctrl-C
  }
  const output = await finished;
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.match(new TextDecoder().decode(output.stdout), /Mirror stopped by SIGINT\./);
  await Deno.remove(clone, { recursive: true });
});

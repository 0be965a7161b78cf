/** The library entry, as the README shows it: a Deno program that imports `mod.ts` by path. */
import assert from "node:assert/strict";
import { MIN_BATCHED_WRITES } from "../../lib/engine/copy_scheduler.ts";
import { assertMirrored, withWork, writeFile } from "../helpers.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** The README's library program and the command line that runs it. */
function readmeProgram(): { code: string; command: string[] } {
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  const section = readme.slice(readme.indexOf("## Use it as a library"));
  const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  const command = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(code && command, "the README's library section has a program and a command");
  return { code, command: command.trim().split(/\s+/) };
}

Deno.test("library: the README's program, importing mod.ts by path, mirrors two folders and exits", async () => {
  const { code, command } = readmeProgram();
  assert.deepEqual(command.slice(0, 4), ["deno", "run", "--allow-read", "--allow-write"]);
  const [script, source, replica] = command.slice(4);
  assert.ok(script && source && replica, command.join(" "));
  await withWork(async (work) => {
    // Not under this project: no deno.json is found, as for a user's own program.
    const program = code.replace('"./folder-mirror/mod.ts"', JSON.stringify(`${ROOT}mod.ts`));
    assert.notEqual(program, code, "the program imports ./folder-mirror/mod.ts");
    Deno.writeTextFileSync(`${work}/${script}`, program);
    // Enough small files for the copy worker (a second thread) to take part:
    // the program must still exit by itself when the cycle is over.
    const files = MIN_BATCHED_WRITES + 200;
    for (let i = 0; i < files; i++) writeFile(`${work}/${source}/d${i % 10}/f${i}.txt`, `${i}`);
    const run = async () => {
      const child = new Deno.Command(Deno.execPath(), {
        args: [...command.slice(1, 4), "--no-prompt", ...command.slice(4)],
        cwd: work,
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
      const output = await child.output();
      clearTimeout(timer);
      const text = new TextDecoder().decode(output.stdout);
      assert.equal(output.code, 0, `${text}\n${new TextDecoder().decode(output.stderr)}`);
      return text;
    };

    const first = await run();
    assertMirrored(`${work}/${source}`, `${work}/${replica}`);
    assert.match(first, new RegExp(`^${files} copied, 0 removed, 0 failed$`, "m"));
    assert.match(
      first,
      /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[INFO\]: File d3\/f3\.txt has been copied\.$/m,
      "LogTape shows the mirror's lines, in its format",
    );
    assert.match(
      Deno.readTextFileSync(`${work}/mirror.log`),
      /\[INFO\]: File d3\/f3\.txt has been copied\./,
    );

    Deno.removeSync(`${work}/${source}/d0`, { recursive: true });
    writeFile(`${work}/${source}/new.txt`, "new");
    const second = await run();
    assertMirrored(`${work}/${source}`, `${work}/${replica}`);
    assert.match(second, /^1 copied, 1 removed, 0 failed$/m);
  });
});

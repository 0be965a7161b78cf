/**
 * Names the runtime cannot use (#18): not valid UTF-8. Deno reads them with
 * U+FFFD in place of each bad byte, and that name does not exist on disk, so
 * they can be neither copied nor removed: each is an ERROR, counted as
 * failed, and its folder counts as incompletely read. The names are made with
 * Python, which can write any bytes.
 */
import assert from "node:assert/strict";
import { logLines, runMirror, runOnce, succeeds, withWork, writeFile } from "../helpers.ts";

/** Run Python code with the work folder as its working folder. */
function python(work: string, code: string): void {
  const output = new Deno.Command("python3", { args: ["-c", code], cwd: work }).outputSync();
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
}

const hasPython = succeeds("python3", "--version");

Deno.test({
  name:
    "names: a name that is not valid UTF-8 is an ERROR (\\uFFFD), failed, exit 1; --verify says so",
  ignore: !hasPython,
  fn: async () => {
    await withWork(async (work) => {
      writeFile(`${work}/src/ok.txt`, "ok");
      writeFile(`${work}/src/a/b/c/d/deep.txt`, "deep");
      python(
        work,
        "import os\n" +
          "open(b'src/caf\\xe9.txt','wb').write(b'x')\n" +
          "os.mkdir(b'src/dir\\xff')\n" +
          "open(b'src/a/b/c/d/bad\\xfe','wb').write(b'z')\n",
      );
      // A replica-only file beside the bad name: its folder is not read in full,
      // so nothing is deleted from it.
      writeFile(`${work}/rep/a/b/c/d/stale.txt`, "stale");
      const result = await runOnce(work);
      assert.equal(result.code, 1, result.stdout + result.stderr);
      const log = logLines(`${work}/log.txt`);
      for (const name of ["caf\\uFFFD.txt", "dir\\uFFFD", "a/b/c/d/bad\\uFFFD"]) {
        assert.ok(
          log.some((line) =>
            line.includes(
              `[ERROR]: Could not read source path ${name}: its name is not valid UTF-8`,
            )
          ),
          `no ERROR for ${name}:\n${log.join("\n")}`,
        );
      }
      assert.match(log.at(-1)!, / 3 failed;/);
      assert.equal(Deno.readTextFileSync(`${work}/rep/a/b/c/d/stale.txt`), "stale");
      assert.equal(Deno.readTextFileSync(`${work}/rep/a/b/c/d/deep.txt`), "deep");
      assert.equal(Deno.readTextFileSync(`${work}/rep/ok.txt`), "ok");

      const verified = await runMirror(["--source", "src", "--replica", "rep", "--verify"], work);
      assert.equal(verified.code, 1, verified.stdout);
      assert.match(verified.stdout, /could not read source caf\\uFFFD\.txt: its name is not valid/);
      assert.match(verified.stdout, /could not read source dir\\uFFFD: /);
    });
  },
});

Deno.test({
  name:
    "names: two bad names that read as one, and bad names in the replica, are handled without a crash",
  ignore: !hasPython,
  fn: async () => {
    await withWork(async (work) => {
      writeFile(`${work}/src/x/ok.txt`, "ok");
      python(
        work,
        "import os\n" +
          "open(b'src/x/caf\\xe9.txt','wb').write(b'1')\n" +
          "open(b'src/x/caf\\xe8.txt','wb').write(b'2')\n" +
          "os.makedirs(b'rep/y/z', exist_ok=True)\n" +
          "open(b'rep/y/z/old\\xff','wb').write(b'3')\n" +
          "os.makedirs(b'rep/x', exist_ok=True)\n" +
          "open(b'rep/x/stale\\xff','wb').write(b'4')\n",
      );
      writeFile(`${work}/src/y/z/keep.txt`, "keep");
      const result = await runOnce(work);
      assert.equal(result.code, 1, result.stdout + result.stderr);
      assert.doesNotMatch(result.stderr, /unexpected error|\n\s+at /);
      const log = logLines(`${work}/log.txt`).join("\n");
      assert.match(
        log,
        /\[ERROR\]: Could not read source path x\/caf\\uFFFD\.txt: two or more names/,
      );
      // The replica's stale bad names cannot be removed: said, every cycle.
      assert.match(log, /\[ERROR\]: Could not read replica path y\/z\/old\\uFFFD: /);
      assert.match(log, /\[ERROR\]: Could not read replica path x\/stale\\uFFFD: /);
      assert.equal(Deno.readTextFileSync(`${work}/rep/x/ok.txt`), "ok");
      assert.equal(Deno.readTextFileSync(`${work}/rep/y/z/keep.txt`), "keep");
      const again = await runOnce(work);
      assert.equal(again.code, 1);
    });
  },
});

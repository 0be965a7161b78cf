import assert from "node:assert/strict";
import { ExcludeFiles } from "../../lib/cli/exclude_from.ts";
import { excludeMatcher } from "../../lib/core/exclude.ts";

/** A log that keeps its lines as `LEVEL message`, placeholders filled in. */
function recorder() {
  const lines: string[] = [];
  const add = (level: string) => (message: string, properties: Record<string, unknown>) =>
    lines.push(`${level} ${message.replace(/\{(\w+)\}/g, (_, name) => String(properties[name]))}`);
  return { lines, log: { info: add("INFO"), warn: add("WARNING") } };
}

async function withDir(body: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "exclude-from-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("exclude-from: a file that cannot be used is one line naming it", async () => {
  await withDir((dir) => {
    Deno.writeFileSync(`${dir}/latin1`, new Uint8Array([0x63, 0x61, 0x66, 0xe9])); // "café"
    Deno.writeTextFileSync(`${dir}/nul`, "a\0b");
    Deno.writeTextFileSync(`${dir}/good`, "*.o\n");
    const cases: [string, RegExp][] = [
      [`${dir}/missing`, /cannot use '.*missing': No such file or directory/],
      [dir, /cannot use '.*': not a regular file\.$/],
      [`${dir}/latin1`, /cannot use '.*latin1': not UTF-8 text\.$/],
      [`${dir}/nul`, /cannot use '.*nul': a binary file: it holds a NUL byte\.$/],
    ];
    for (const [path, message] of cases) {
      const loaded = ExcludeFiles.load([`${dir}/good`, path]);
      assert.equal(typeof loaded, "string", path);
      assert.match(loaded as string, /^--exclude-from: /);
      assert.match(loaded as string, message);
      assert.doesNotMatch(loaded as string, /\n/);
    }
  });
});

Deno.test("exclude-from: a FIFO is refused without being opened (the read would block)", async () => {
  await withDir((dir) => {
    const made = new Deno.Command("mkfifo", { args: [`${dir}/fifo`] }).outputSync();
    assert.ok(made.success);
    assert.match(ExcludeFiles.load([`${dir}/fifo`]) as string, /not a regular file/);
  });
});

Deno.test("exclude-from: files are read as .gitignore files; they come before --exclude", async () => {
  await withDir(async (dir) => {
    // A BOM, CRLF line ends, a comment, a negation, and rsync's `- ` prefix (a name here).
    Deno.writeTextFileSync(`${dir}/first`, "\uFEFF# logs\r\n*.log\r\n!keep.log\r\n- a.txt\r\n");
    Deno.writeTextFileSync(`${dir}/second`, "keep.log\nbuild/\n");
    const files = ExcludeFiles.load([`${dir}/first`, `${dir}/second`]);
    assert.ok(files instanceof ExcludeFiles);
    const excluded = (await excludeMatcher(["!build/"], files.texts))!;
    assert.ok(excluded("x/a.log", false));
    assert.ok(excluded("keep.log", false), "the second file's rule comes later and wins");
    assert.ok(!excluded("build", true), "--exclude comes last and wins");
    assert.ok(!excluded("a.txt", false), "'- a.txt' is not rsync's exclude rule");
    assert.ok(excluded("- a.txt", false), "it is a name");
    assert.ok(!excluded("# logs", false));
  });
});

Deno.test("exclude-from: read again only when the stat changes; a failure keeps the old rules, said once", async () => {
  await withDir((dir) => {
    const path = `${dir}/rules`;
    Deno.writeTextFileSync(path, "*.tmp\n");
    const files = ExcludeFiles.load([path]) as ExcludeFiles;
    const { lines, log } = recorder();
    const first = files.current(log);
    assert.deepEqual(first, ["*.tmp\n"]);
    assert.equal(files.current(log), first, "unchanged: the same array");
    assert.deepEqual(lines, []);

    Deno.writeTextFileSync(path, "*.log\n");
    const second = files.current(log);
    assert.deepEqual(second, ["*.log\n"]);
    assert.notEqual(second, first);
    assert.deepEqual(lines, [
      `INFO Exclude file ${path} was read again; its rules apply from this cycle on.`,
    ]);

    // Malformed: one WARNING, the old rules stay (the same array), not said again.
    Deno.writeTextFileSync(path, "*.txt\n\0");
    assert.equal(files.current(log), second);
    assert.equal(files.current(log), second);
    assert.equal(lines.length, 2);
    assert.equal(
      lines[1],
      `WARNING Exclude file ${path} cannot be used (a binary file: it holds a NUL byte); ` +
        "its previous rules stay in force.",
    );
    // Gone: another reason, another WARNING.
    Deno.removeSync(path);
    assert.equal(files.current(log), second);
    assert.equal(files.current(log), second);
    assert.equal(lines.length, 3);
    assert.match(lines[2]!, /^WARNING .* cannot be used \(No such file or directory/);

    // Back, by an editor's rename into place (same size, new inode).
    Deno.writeTextFileSync(`${dir}/new`, "*.bak\n");
    Deno.renameSync(`${dir}/new`, path);
    assert.deepEqual(files.current(log), ["*.bak\n"]);
    assert.equal(lines.length, 4);
    assert.match(lines[3]!, /^INFO .* was read again/);
  });
});

Deno.test("exclude-from: an edit that keeps the size is seen (mtime), even within one second", async () => {
  await withDir((dir) => {
    const path = `${dir}/rules`;
    Deno.writeTextFileSync(path, "a.tmp\n");
    const files = ExcludeFiles.load([path]) as ExcludeFiles;
    const { log } = recorder();
    files.current(log);
    Deno.writeTextFileSync(path, "b.tmp\n");
    Deno.utimeSync(path, new Date(), new Date(Date.now() + 5_000)); // an mtime surely new
    assert.deepEqual(files.current(log), ["b.tmp\n"]);
  });
});

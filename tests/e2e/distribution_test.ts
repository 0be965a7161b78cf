/** Running the program the ways users get it: from a URL, and as a compiled binary. */
import assert from "node:assert/strict";
import { MIN_BATCHED_WRITES as MIN_WORKER_COPIES } from "../../lib/engine/copy_scheduler.ts";
import { assertMirrored, logHas, logLines, waitFor, withWork, writeFile } from "../helpers.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** The project served read-only on 127.0.0.1, `.ts` as application/typescript. */
interface ProjectServer {
  readonly url: string;
  /** Paths asked for, in order. */
  readonly requested: string[];
  shutdown(): Promise<void>;
}

/**
 * Serve the project; paths in `refused` get a 404, as if the server had lost
 * them. Deno caches remote modules by URL, and a port is soon given out again:
 * every server puts the project under a path of its own, so nothing comes
 * from the cache.
 */
function serveProject(refused: readonly string[]): ProjectServer {
  const requested: string[] = [];
  const prefix = `/${crypto.randomUUID()}`;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const path = decodeURIComponent(new URL(request.url).pathname).replace(prefix, "");
      requested.push(path);
      if (path.includes("..")) return new Response("no", { status: 403 });
      try {
        if (refused.includes(path)) throw new Deno.errors.NotFound(path);
        const body = await Deno.readFile(`${ROOT}${path}`);
        const type = path.endsWith(".ts") ? "application/typescript" : "application/octet-stream";
        return new Response(body, { headers: { "content-type": type } });
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
  const url = `http://127.0.0.1:${server.addr.port}${prefix}/main.ts`;
  return { url, requested, shutdown: () => server.shutdown() };
}

/** Run `body` on a fresh work folder with the project served (see {@link serveProject}). */
async function withServedProject(
  refused: readonly string[],
  body: (work: string, server: ProjectServer) => Promise<void>,
): Promise<void> {
  const server = serveProject(refused);
  try {
    await withWork((work) => body(work, server));
  } finally {
    await server.shutdown();
  }
}

/** The program from `server`, mirroring `work/src` into `work/rep` with `args`. */
function fromUrl(work: string, server: ProjectServer, ...args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--no-prompt",
      server.url,
      "--source",
      "src",
      "--replica",
      "rep",
      ...args,
    ],
    cwd: work,
    stdout: "piped",
    stderr: "piped",
  });
}

/** Enough files in `work/src/folder` for the copy worker, in several batches;
 * made aside and moved in at once, so that one cycle sees them all. */
function manyFiles(work: string, folder: string): void {
  for (let i = 0; i < MIN_WORKER_COPIES; i++) writeFile(`${work}/aside/f${i}.txt`, `${i}`);
  Deno.renameSync(`${work}/aside`, `${work}/src/${folder}`);
}

/** Mirror `work/src` into `work/rep` once, running main.ts from `server`. */
async function runFromUrl(work: string, server: ProjectServer) {
  manyFiles(work, "many");
  writeFile(`${work}/src/a.txt`, "a");
  const output = await fromUrl(work, server, "--once").output();
  const stderr = new TextDecoder().decode(output.stderr).replace(/.*Download.*\n/g, "");
  return { code: output.code, stderr };
}

const warningsIn = (work: string) =>
  logLines(`${work}/log.txt`).filter((line) => line.includes("[WARNING]"));

Deno.test("runs from a URL with only --allow-read and --allow-write", async () => {
  await withServedProject([], async (work, server) => {
    const { code, stderr } = await runFromUrl(work, server);
    assert.equal(code, 0, stderr);
    assert.doesNotMatch(stderr, /error|warning/i);
    assertMirrored(`${work}/src`, `${work}/rep`);
    assert.deepEqual(warningsIn(work), [], "the copy worker ran");
  });
});

/** Try `deno compile` (it downloads a runtime); undefined when that worked, else why not. */
const binaryDir = Deno.makeTempDirSync({ prefix: "mirror-compile-" });
const compileFailure = (() => {
  const output = new Deno.Command(Deno.execPath(), {
    args: [
      "compile",
      "--allow-read",
      "--allow-write",
      "--output",
      `${binaryDir}/folder-mirror`,
      `${ROOT}main.ts`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  if (output.success) return undefined;
  Deno.removeSync(binaryDir, { recursive: true });
  const text = new TextDecoder().decode(output.stderr);
  const reason = text.includes("denort")
    ? "deno compile could not download the Deno runtime (denort) here"
    : `deno compile failed: ${text.split("\n").find((line) => line.includes("error")) ?? text}`;
  console.error(`compiled-binary test ignored: ${reason}`);
  return reason;
})();

Deno.test({
  name: "the compiled binary mirrors (needs the Deno runtime download)",
  ignore: compileFailure !== undefined,
  fn: async () => {
    try {
      await withWork(async (work) => {
        for (let i = 0; i < MIN_WORKER_COPIES + 100; i++) {
          writeFile(`${work}/src/many/f${i}.txt`, `file ${i}`);
        }
        const output = await new Deno.Command(`${binaryDir}/folder-mirror`, {
          args: ["--source", "src", "--replica", "rep", "--once"],
          cwd: work,
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
        assertMirrored(`${work}/src`, `${work}/rep`);
      });
    } finally {
      Deno.removeSync(binaryDir, { recursive: true });
    }
  },
});

/**
 * A source that takes every code path: enough small files for the copy
 * worker, a file big enough for a background copy, new folders filled under a
 * temp name, a same-size change to compare by content, a removal.
 */
function everyPath(work: string): void {
  manyFiles(work, "many");
  writeFile(`${work}/src/new/deep/a.txt`, "a");
  Deno.writeFileSync(`${work}/src/big.bin`, new Uint8Array(3 << 20).fill(1));
  writeFile(`${work}/src/same.txt`, "1234");
}

/** The README's scoped command line, for `work` ("SRC" etc. filled in), from `main`. */
function scopedCommand(work: string, main: string, ...extra: string[]): Deno.Command {
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  const line = /deno run (--allow-read=\S+) \\\n\s*(--allow-write=\S+) \\/.exec(readme);
  assert.ok(line, "the README shows a scoped command line");
  const fill = (flag: string) =>
    flag.replaceAll("/srv/data", `${work}/src`).replaceAll("/backup/data", `${work}/rep`)
      .replaceAll("/var/log/mirror.log", `${work}/log.txt`);
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      fill(line[1]!),
      fill(line[2]!),
      "--no-prompt",
      main,
      "--source",
      `${work}/src`,
      "--replica",
      `${work}/rep`,
      "--log-file",
      `${work}/log.txt`,
      ...extra,
    ],
    cwd: work,
    stdout: "piped",
    stderr: "piped",
  });
}

/**
 * What a scoped run wrote on stderr, but for the one WARNING every such run
 * gives (the folders above the replica cannot be checked for another mirror).
 */
function scopedStderr(bytes: Uint8Array): string {
  const lines = new TextDecoder().decode(bytes).replace(/.*Download.*\n/g, "").split("\n");
  const around = lines.filter((line) =>
    /\[WARNING\]: Cannot check that no other mirror writes a folder around the replica .* \(the permissions given are scoped to it\)/
      .test(line)
  );
  assert.equal(around.length, 1, lines.join("\n"));
  return lines.filter((line) => !around.includes(line)).join("\n");
}

/** Run the README's scoped command on every code path, then again after changes, then --watch. */
async function scopedRuns(work: string, main: string): Promise<void> {
  everyPath(work);
  const text = scopedStderr;
  const first = await scopedCommand(work, main, "--once").output();
  assert.equal(first.code, 0, text(first.stderr));
  assert.equal(text(first.stderr), "", "no error or warning");
  assertMirrored(`${work}/src`, `${work}/rep`);
  await new Promise((resolve) => setTimeout(resolve, 1100));
  writeFile(`${work}/src/same.txt`, "5678");
  Deno.removeSync(`${work}/src/new`, { recursive: true });
  const second = await scopedCommand(work, main, "--once").output();
  assert.equal(second.code, 0, text(second.stderr));
  assert.equal(text(second.stderr), "");
  assertMirrored(`${work}/src`, `${work}/rep`);
  const verified = await scopedCommand(work, main, "--verify").output();
  assert.equal(verified.code, 0, new TextDecoder().decode(verified.stdout));
  const watching = scopedCommand(work, main, "--watch", "--time-interval", "60").spawn();
  const finished = watching.output();
  try {
    await waitFor("the watcher's first cycle", logHas(work, /Mirror started.*watching/));
    await new Promise((resolve) => setTimeout(resolve, 300));
    writeFile(`${work}/src/watched.txt`, "seen");
    await waitFor("a watched change", logHas(work, "File watched.txt has been copied."));
  } finally {
    watching.kill("SIGINT");
  }
  const output = await finished;
  assert.equal(output.code, 0);
  assert.equal(text(output.stderr), "");
  assert.equal(
    warningsIn(work).filter((line) => !line.includes("Cannot check that no other mirror")).length,
    0,
  );
}

Deno.test("the README's scoped command line works on every code path, from disk", async () => {
  await withWork((work) => scopedRuns(work, `${ROOT}main.ts`));
});

Deno.test("the README's scoped command line works on every code path, from a URL", async () => {
  await withServedProject([], (work, server) => scopedRuns(work, server.url));
});

Deno.test("under scoped permissions a symlink cannot be made: one clear ERROR each (Deno's rule)", async () => {
  await withWork(async (work) => {
    writeFile(`${work}/src/a.txt`, "a");
    Deno.symlinkSync("a.txt", `${work}/src/link`);
    const output = await scopedCommand(work, `${ROOT}main.ts`, "--once").output();
    assert.equal(output.code, 1);
    const stderr = scopedStderr(output.stderr).trim().split("\n");
    assert.equal(stderr.length, 1, stderr.join("\n"));
    assert.match(
      stderr[0]!,
      /\[ERROR\]: Could not create symlink link: .*requires unscoped --allow-read and --allow-write/,
    );
    assert.equal(Deno.readTextFileSync(`${work}/rep/a.txt`), "a");
  });
});

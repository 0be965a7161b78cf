/** Running the program the ways users get it: from a URL, and as a compiled binary. */
import assert from "node:assert/strict";
import { MIN_WORKER_COPIES } from "../lib/apply.ts";
import { assertMirrored, logHas, logLines, waitFor, withWork, writeFile } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;

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
    assert.ok(server.requested.includes("/lib/copy_worker.ts"), "the worker loaded from the URL");
  });
});

Deno.test("from a URL whose copy worker cannot be loaded: one WARNING, every file copied", async () => {
  await withServedProject(["/lib/copy_worker.ts"], async (work, server) => {
    const { code, stderr } = await runFromUrl(work, server);
    assert.equal(code, 0, stderr);
    assertMirrored(`${work}/src`, `${work}/rep`);
    const warnings = warningsIn(work);
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(
      warnings[0]!,
      /\[WARNING\]: The copy worker stopped \(.+\); files are copied without it from now on\.$/,
    );
  });
});

Deno.test("a copy worker that failed is not started again by later cycles", async () => {
  await withServedProject(["/lib/copy_worker.ts"], async (work, server) => {
    manyFiles(work, "first");
    const child = fromUrl(work, server, "--time-interval", "0.3").spawn();
    const finished = child.output();
    try {
      const summary = `Cycle finished: ${MIN_WORKER_COPIES} copied`;
      await waitFor("the first cycle", logHas(work, new RegExp(summary)));
      manyFiles(work, "second");
      await waitFor(
        "the second cycle",
        () => logLines(`${work}/log.txt`).filter((line) => line.includes(summary)).length === 2,
      );
    } finally {
      child.kill("SIGINT");
      assert.equal((await finished).code, 0);
    }
    assertMirrored(`${work}/src`, `${work}/rep`);
    assert.equal(warningsIn(work).length, 1, warningsIn(work).join("\n"));
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
      "--include",
      `${ROOT}lib/copy_worker.ts`,
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
        for (let i = 0; i < 200; i++) writeFile(`${work}/src/many/f${i}.txt`, `file ${i}`);
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

Deno.test("runs with permissions scoped to the two folders, the log file and the state file", async () => {
  await withWork(async (work) => {
    for (let i = 0; i < 150; i++) writeFile(`${work}/src/d/f${i}.txt`, `file ${i}`);
    const run = (...extra: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read=src,rep,log.txt.state",
          "--allow-write=rep,log.txt,log.txt.state",
          "--no-prompt",
          `${ROOT}main.ts`,
          "--source",
          "src",
          "--replica",
          "rep",
          ...extra,
        ],
        cwd: work,
        stdout: "piped",
        stderr: "piped",
      }).output();
    const mirrored = await run("--once");
    assert.equal(mirrored.code, 0, new TextDecoder().decode(mirrored.stderr));
    assertMirrored(`${work}/src`, `${work}/rep`);
    const verified = await run("--verify");
    assert.equal(verified.code, 0, new TextDecoder().decode(verified.stdout));
  });
});

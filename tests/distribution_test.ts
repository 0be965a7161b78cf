/** Running the program the ways users get it: from a URL, and as a compiled binary. */
import assert from "node:assert/strict";
import { MIN_WORKER_COPIES } from "../lib/apply.ts";
import { assertMirrored, withWork, writeFile } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** Serve the project read-only on 127.0.0.1, `.ts` as application/typescript. */
function serveProject(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const path = decodeURIComponent(new URL(request.url).pathname);
    if (path.includes("..")) return new Response("no", { status: 403 });
    try {
      const body = await Deno.readFile(`${ROOT}${path}`);
      const type = path.endsWith(".ts") ? "application/typescript" : "application/octet-stream";
      return new Response(body, { headers: { "content-type": type } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
}

Deno.test("runs from a URL with only --allow-read and --allow-write", async () => {
  const server = serveProject();
  try {
    await withWork(async (work) => {
      // Enough files for the copy worker, which must load from the URL too.
      for (let i = 0; i < MIN_WORKER_COPIES; i++) writeFile(`${work}/src/many/f${i}.txt`, `${i}`);
      writeFile(`${work}/src/a.txt`, "a");
      // A new port each run: Deno caches remote modules by URL.
      const url = `http://127.0.0.1:${server.addr.port}/main.ts`;
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read",
          "--allow-write",
          "--no-prompt",
          url,
          "--source",
          "src",
          "--replica",
          "rep",
          "--once",
        ],
        cwd: work,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, stderr);
      assert.doesNotMatch(stderr.replace(/.*Download.*\n/g, ""), /error|warning/i);
      assertMirrored(`${work}/src`, `${work}/rep`);
    });
  } finally {
    await server.shutdown();
  }
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

Deno.test("runs with permissions scoped to the two folders and the log file", async () => {
  await withWork(async (work) => {
    for (let i = 0; i < 150; i++) writeFile(`${work}/src/d/f${i}.txt`, `file ${i}`);
    const run = (...extra: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read=src,rep",
          "--allow-write=rep,log.txt",
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

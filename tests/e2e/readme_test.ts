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

/** The README's systemd unit: its `ExecStart` words and its other settings. */
function unit(): { execStart: string[]; settings: Map<string, string> } {
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  const block = /```ini\n(\[Unit\][\s\S]*?)```/.exec(readme)?.[1] ?? "";
  const lines = block.replace(/\\\n\s*/g, "").split("\n");
  const settings = new Map<string, string>();
  for (const line of lines) {
    const at = line.indexOf("=");
    if (at > 0 && !line.startsWith("#")) settings.set(line.slice(0, at), line.slice(at + 1));
  }
  return { execStart: (settings.get("ExecStart") ?? "").split(/\s+/), settings };
}

Deno.test("README: the systemd unit runs as written, with the network cut (#18)", async () => {
  const { execStart, settings } = unit();
  assert.deepEqual(execStart.slice(0, 4), ["/usr/bin/env", "deno", "run", "--cached-only"]);
  assert.equal(settings.get("RestartPreventExitStatus"), "2");
  // As the README says: the packages fetched once before (here: already).
  const cached = new Deno.Command(Deno.execPath(), { args: ["cache", `${ROOT}main.ts`] })
    .outputSync();
  assert.ok(cached.success, new TextDecoder().decode(cached.stderr));
  const work = await Deno.makeTempDir({ prefix: "mirror-unit-" });
  try {
    Deno.mkdirSync(`${work}/srv/data/deep/er`, { recursive: true });
    Deno.writeTextFileSync(`${work}/srv/data/deep/er/a.txt`, "a");
    Deno.mkdirSync(`${work}/var/log`, { recursive: true });
    Deno.mkdirSync(`${work}/var/lib/folder-mirror`, { recursive: true }); // StateDirectory
    Deno.mkdirSync(`${work}/var/lib/prometheus/node-exporter`, { recursive: true });
    const words = execStart.slice(2).map((word) =>
      word.replaceAll("/opt/folder-mirror/main.ts", `${ROOT}main.ts`)
        // Every path of the machine, in a flag's value or a list of them, below `work`.
        .replace(/(^|[=,])\/(srv|backup|var)\b/g, `$1${work}/$2`)
    );
    Deno.mkdirSync(`${work}/backup`);
    // The network cut: every fetch would go through a proxy that is not there.
    const dead = "http://127.0.0.1:9";
    const child = new Deno.Command(Deno.execPath(), {
      args: words.slice(1), // after "deno"
      env: { HTTP_PROXY: dead, HTTPS_PROXY: dead, http_proxy: dead, https_proxy: dead },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const finished = child.output();
    try {
      await waitFor("the first cycle", () => {
        try {
          return Deno.readTextFileSync(`${work}/backup/data/deep/er/a.txt`) === "a";
        } catch {
          return false;
        }
      }, 30_000);
      // What a change overwrites is kept; the status and the metrics say how it went. The
      // change comes at once, during the first full cycle: the source's folders are watched
      // before it lists them (once watched only after, such a change waited for the next one).
      Deno.writeTextFileSync(`${work}/srv/data/deep/er/a.txt`, "a, changed");
      await waitFor("the overwritten file kept", () => {
        try {
          return [...Deno.readDirSync(`${work}/backup/versions`)].some((folder) =>
            Deno.readTextFileSync(`${work}/backup/versions/${folder.name}/deep/er/a.txt`) === "a"
          );
        } catch {
          return false;
        }
      }, 30_000);
      // Written after the cycle that made the backup (its end may come a moment later).
      const metrics = `${work}/var/lib/prometheus/node-exporter/folder_mirror.prom`;
      await waitFor("the metrics", () => {
        try {
          return /^folder_mirror_backed_up_total [1-9]/m.test(Deno.readTextFileSync(metrics));
        } catch {
          return false;
        }
      }, 30_000);
      assert.match(
        Deno.readTextFileSync(metrics),
        /^folder_mirror_last_success_timestamp_seconds \d/m,
      );
      const status = JSON.parse(
        Deno.readTextFileSync(`${work}/var/lib/folder-mirror/status.json`),
      );
      assert.equal(status.mode, "watch");
    } finally {
      try {
        child.kill("SIGTERM"); // the unit's KillSignal
      } catch {
        // it ended by itself: its output says why
      }
    }
    const output = await finished;
    assert.equal(
      output.code,
      0,
      `${words.join(" ")}\n${new TextDecoder().decode(output.stderr)}`,
    );
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

/**
 * The house's rooms (#20): the shared words (`lib/core`) import nothing of
 * the program; the state only the shared words; the engine no backend and
 * no command line; a backend no command line and no other backend.
 */
import assert from "node:assert/strict";

const LIB = new URL("../../lib/", import.meta.url);

/** Every module of `lib/`, by its path below it, with the `lib/` paths it imports. */
function imports(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(new URL(dir, LIB))) {
      const path = `${dir}${entry.name}`;
      if (entry.isDirectory) walk(`${path}/`);
      else if (entry.name.endsWith(".ts")) {
        const text = Deno.readTextFileSync(new URL(path, LIB))
          // Examples in comments import what they show: not the module's own imports.
          .replace(/\/\*[\s\S]*?\*\//g, "");
        const targets = [...text.matchAll(/(?:from|import\(|import)\s*"(\.{1,2}\/[^"]+\.ts)"/g)]
          .map((m) => new URL(m[1]!, new URL(path, LIB)).pathname.slice(LIB.pathname.length));
        found.set(path, targets);
      }
    }
  };
  walk("");
  return found;
}

/** The room of a module: `core`, `state`, `engine`, `cli`, `backends/NAME`, or `backends`
 * (the registry of them all). */
function room(path: string): string {
  const parts = path.split("/");
  return parts[0] === "backends" && parts.length > 2 ? `backends/${parts[1]}` : parts[0]!;
}

const ALLOWED: Readonly<Record<string, (to: string, from: string) => boolean>> = {
  core: (to) => to === "core",
  state: (to) => to === "core" || to === "state",
  engine: (to) => ["core", "state", "engine"].includes(to),
  cli: () => true,
  backends: (to) => to === "engine" || to.startsWith("backends/"),
};

Deno.test("layout: every module imports only the rooms below its own", () => {
  const wrong: string[] = [];
  for (const [path, targets] of imports()) {
    const from = room(path);
    for (const target of targets) {
      const to = room(target);
      const allowed = ALLOWED[from] ??
        // A backend: the shared words, the state and the engine's words, itself; no other backend.
        ((to: string) => ["core", "state", "engine"].includes(to) || to === from);
      if (!allowed(to, from)) wrong.push(`${path} imports ${target}`);
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("layout: the rooms are where the house says", () => {
  const rooms = new Set([...imports().keys()].map(room));
  for (const expected of ["core", "state", "engine", "cli", "backends/local", "backends/s3"]) {
    assert.ok(rooms.has(expected), `${expected} is missing`);
  }
  assert.deepEqual([...rooms].filter((r) => !r.startsWith("backends/")).sort(), [
    "backends",
    "cli",
    "core",
    "engine",
    "state",
  ]);
});

/**
 * A throwaway single-node Ceph cluster on 127.0.0.1 for the S3 tests: one
 * monitor, one OSD on `memstore`, one `radosgw`, auth off, in a temp folder
 * (see FACTS.md). Needs the Debian packages `ceph-mon ceph-osd ceph-common
 * radosgw` (`.ci/run` installs them); {@link cephMissing} says why not when
 * they are missing. Start-up takes ~15 s.
 */
import { succeeds } from "./helpers.ts";

/** A running cluster. */
export interface Ceph {
  /** The S3 endpoint, `http://127.0.0.1:PORT`. */
  readonly endpoint: string;
  /** A user's S3 credentials. */
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
  /** Stop `radosgw` (the S3 endpoint goes away; the data stays). */
  stopGateway(): Promise<void>;
  /** Start `radosgw` again after {@link stopGateway}. */
  startGateway(): Promise<void>;
  /** Stop everything and remove the folder. */
  stop(): Promise<void>;
  /** {@link stop}, without waiting (for the process's `unload`). */
  kill(): void;
}

let shared: Promise<Ceph> | undefined;

/**
 * The one cluster all S3 tests of this process share (they use buckets of
 * their own): started by the first to ask, killed when the process ends.
 * Tests using it turn the resource and op sanitizers off (it outlives them).
 */
export function sharedCeph(): Promise<Ceph> {
  shared ??= startCeph().then((ceph) => {
    globalThis.addEventListener("unload", () => ceph.kill());
    return ceph;
  });
  return shared;
}

/** Why the cluster cannot be started here, or undefined when it can. */
export function cephMissing(): string | undefined {
  for (const tool of ["monmaptool", "ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph"]) {
    if (!succeeds("sh", "-c", `command -v ${tool}`)) {
      return `needs ${tool}: apt-get install --no-install-recommends ceph-mon ceph-osd ceph-common radosgw`;
    }
  }
  return undefined;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function run(program: string, ...args: string[]): Promise<string> {
  const output = await new Deno.Command(program, { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    throw new Error(
      `${program} ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}${text}`,
    );
  }
  return text;
}

async function waitUntil(what: string, ready: () => Promise<boolean>, ms = 60_000) {
  const started = Date.now();
  while (!(await ready())) {
    if (Date.now() - started > ms) throw new Error(`ceph: ${what} not ready after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Start a cluster (see the module documentation). */
export async function startCeph(): Promise<Ceph> {
  const dir = await Deno.makeTempDir({ prefix: "ceph-" });
  const fsid = crypto.randomUUID();
  const mon = `127.0.0.1:${freePort()}`, s3Port = freePort();
  const conf = `${dir}/ceph.conf`;
  await Deno.writeTextFile(
    conf,
    `[global]
fsid = ${fsid}
mon host = v1:${mon}
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
ms bind msgr2 = false
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd objectstore = memstore
osd class update on start = false
osd crush update on start = false
memstore device bytes = 8589934592
mon data avail warn = 2
mon data avail crit = 1
rgw gc obj min wait = 1
rgw gc processor period = 2
rgw gc processor max time = 2
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
log file = ${dir}/log/$name.log
[mon.a]
mon data = ${dir}/mon.a
[osd.0]
osd data = ${dir}/osd.0
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:${s3Port} tcp_nodelay=1
rgw data = ${dir}/rgw
`,
  );
  for (const sub of ["run", "log", "mon.a", "osd.0", "rgw"]) await Deno.mkdir(`${dir}/${sub}`);
  const daemons: Deno.ChildProcess[] = [];
  const daemon = (program: string, ...args: string[]) => {
    const child = new Deno.Command(program, {
      args: [...args, "-c", conf, "-f"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    daemons.push(child);
    return child;
  };
  const ceph = (...args: string[]) => run("ceph", "-c", conf, "--connect-timeout", "20", ...args);
  let gateway: Deno.ChildProcess | undefined;
  const endpoint = `http://127.0.0.1:${s3Port}`;
  const gatewayUp = async () => {
    try {
      const response = await fetch(endpoint);
      await response.body?.cancel();
      return true;
    } catch {
      return false;
    }
  };
  const stop = async () => {
    for (const child of daemons) {
      try {
        child.kill("SIGKILL");
      } catch {
        // gone already
      }
      await child.status;
    }
    daemons.length = 0;
    await Deno.remove(dir, { recursive: true });
  };
  const kill = () => {
    for (const child of daemons) {
      try {
        child.kill("SIGKILL");
      } catch {
        // gone already
      }
    }
    daemons.length = 0;
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // a daemon still writing: the temp folder stays
    }
  };
  try {
    await run("monmaptool", "--create", "--add", "a", `v1:${mon}`, "--fsid", fsid, `${dir}/monmap`);
    await run("ceph-mon", "--mkfs", "-i", "a", "--monmap", `${dir}/monmap`, "-c", conf);
    daemon("ceph-mon", "-i", "a");
    // The OSD's uuid given to both: one it made up itself would not match
    // the one the monitor recorded ("wrong fsid", and the OSD never comes up).
    const uuid = crypto.randomUUID();
    const id = (await ceph("osd", "create", uuid)).trim();
    await run("ceph-osd", "-i", id, "--mkfs", "--osd-uuid", uuid, "-c", conf);
    await ceph("osd", "crush", "add", `osd.${id}`, "1.0", "host=localhost", "root=default");
    daemon("ceph-osd", "-i", id);
    gateway = daemon("radosgw", "-n", "client.rgw");
    await waitUntil("radosgw", gatewayUp);
    await run(
      "radosgw-admin",
      "-c",
      conf,
      "user",
      "create",
      "--uid=test",
      "--display-name=test",
      "--access-key=AK",
      "--secret=SK",
    );
  } catch (error) {
    let tails = "";
    try {
      for await (const { name } of Deno.readDir(`${dir}/log`)) {
        const text = await Deno.readTextFile(`${dir}/log/${name}`);
        tails += `\n--- ${name}\n${text.split("\n").slice(-8).join("\n")}`;
      }
    } catch {
      // no logs to show
    } finally {
      await stop();
    }
    throw new Error(`${(error as Error).message}${tails}`);
  }
  return {
    endpoint,
    credentials: { accessKeyId: "AK", secretAccessKey: "SK" },
    async stopGateway() {
      if (gateway === undefined) return;
      gateway.kill("SIGKILL");
      await gateway.status;
      daemons.splice(daemons.indexOf(gateway), 1);
      gateway = undefined;
    },
    async startGateway() {
      gateway = daemon("radosgw", "-n", "client.rgw");
      await waitUntil("radosgw", gatewayUp);
    },
    stop,
    kill,
  };
}

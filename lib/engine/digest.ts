/**
 * The tree digest: one MD5 for a whole tree, a one-line proof that anyone can
 * recompute with standard tools (the README gives a Python script).
 *
 * It is built folder by folder, as git builds its trees: the digest of a
 * folder is the MD5 of one line per entry in it, `TYPE MODE NAME CONTENT\n`,
 * in name order (by UTF-8 bytes), where TYPE is `file`, `dir` or `symlink`;
 * MODE the permission bits as four octal digits; NAME the entry's name with
 * `\` written `\\` and a newline `\n`; CONTENT the file's MD5 in hex, the
 * folder's own digest, or the symlink's target (escaped like a name). The
 * tree digest is the digest of the root folder. Excluded paths, FIFOs,
 * sockets and devices are left out; every other entry counts, whatever its
 * name.
 *
 * So a walk computes it as it goes, holding no more than a folder, and a
 * folder whose entries are all as they were (see {@link FolderDigests}) gets
 * its digest back from the index without any MD5 being computed.
 * `node:crypto` is loaded only when an MD5 is.
 *
 * @module
 */
import { type Entry, isSettled, type Tree } from "../core/entry.ts";
import { entryPrint, type PairIndex } from "../state/pair_index.ts";
import { compareNames, parentOf } from "../core/paths.ts";

/**
 * The most a cycle reads only to put the source's tree digest in its summary;
 * a cycle that needed more reads nothing for it and says the digest was not
 * computed (`--verify` computes it at any size).
 */
export const DIGEST_BUDGET = { bytes: 64 * 1024 * 1024, files: 2000 } as const;

/** Lines a cycle holds while MD5s they need are unknown; beyond, it gives up the digest. */
const MAX_HELD_LINES = 100_000;

/**
 * The digest line of one entry in its folder.
 *
 * @param name the entry's name.
 * @param entry what it is.
 * @param content the file's MD5, the folder's digest, or (for a symlink, by default) its target.
 * @returns the line, ending in a newline.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { entryLine } from "./digest.ts";
 * const link = { kind: "symlink" as const, size: 1, mtimeMs: 0, ctimeMs: 0, ino: 1, mode: 0o777, target: "a" };
 * assert.equal(entryLine("to a", link), "symlink 0777 to a a\n");
 * ```
 */
export function entryLine(name: string, entry: Entry, content?: string): string {
  const text = entry.kind === "symlink" ? escape(entry.target ?? "") : content ?? "?";
  return `${entry.kind} ${octal(entry.mode)} ${escape(name)} ${text}\n`;
}

/**
 * The tree digest of a whole tree in memory.
 *
 * @param tree every entry below the root (FIFOs, sockets and devices are left out).
 * @param md5 the MD5 of the file at a path (undefined: unreadable, written `?`).
 * @returns the tree digest, in lowercase hex.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { treeDigest } from "./digest.ts";
 * import type { Entry } from "../core/entry.ts";
 * const file: Entry = { kind: "file", size: 0, mtimeMs: 0, ctimeMs: 0, ino: 1, mode: 0o644 };
 * const dir: Entry = { ...file, kind: "dir", mode: 0o755 };
 * const empty = "d41d8cd98f00b204e9800998ecf8427e";
 * // The root holds the folder d, which holds an empty file e.
 * const digest = await treeDigest(new Map([["d", dir], ["d/e", file]]), () => empty);
 * assert.match(digest, /^[0-9a-f]{32}$/);
 * ```
 */
export async function treeDigest(
  tree: Tree,
  md5: (path: string) => string | undefined,
): Promise<string> {
  const children = new Map<string, string[]>();
  for (const path of tree.keys()) {
    const dir = parentOf(path);
    let names = children.get(dir);
    if (names === undefined) children.set(dir, names = []);
    names.push(path.slice(dir === "" ? 0 : dir.length + 1));
  }
  const digestOf = async (dir: string): Promise<string> => {
    const lines: string[] = [];
    for (const name of (children.get(dir) ?? []).sort(compareNames)) {
      const path = dir === "" ? name : `${dir}/${name}`;
      const entry = tree.get(path)!;
      if (entry.kind === "other") continue;
      const content = entry.kind === "dir"
        ? await digestOf(path)
        : entry.kind === "file"
        ? md5(path)
        : undefined;
      lines.push(entryLine(name, entry, content));
    }
    return await md5Of(lines);
  };
  return await digestOf("");
}

/** One entry of a folder, as {@link FolderDigests.folder} needs it. */
export interface DigestChild {
  /** The entry's name. */
  readonly name: string;
  /** What it is (FIFOs, sockets and devices are skipped). */
  readonly entry: Entry;
  /** For a file: its MD5 when known now (undefined: read at the end, if the budget allows). */
  readonly md5?: string;
  /**
   * For a file without {@link md5}: the index knows its MD5, looked up only
   * if the folder's digest is not known already (most cycles change nothing).
   */
  readonly vouched?: boolean;
  /** For a folder: what {@link FolderDigests.folder} returned for it, or a {@link FolderDigests.hole}. */
  readonly node?: DigestNode;
}

/** A folder's digest: known, or waiting for MD5s read at the end. */
export interface DigestNode {
  /** A print of what the folder holds (NaN: not known yet). */
  readonly print: number;
  /** Its digest may be kept in the index for its print (every file in it settled). */
  readonly cacheable: boolean;
  /** The digest, once known. */
  digest?: string;
  /** The folder's path and lines, while some content is not known. */
  pending?: { readonly dir: string; readonly parts: readonly Part[] };
  /** A stand-in for a folder walked later ({@link FolderDigests.hole}). */
  readonly hole?: boolean;
  /** For a hole: the folder's node, once walked. */
  filled?: DigestNode;
}

type Part = string | { readonly line: string; readonly file: UnknownFile } | {
  readonly line: string;
  readonly node: DigestNode;
};

interface UnknownFile {
  readonly path: string;
  readonly entry: Entry;
  md5?: string;
}

/**
 * The source's tree digest, computed as a walk meets each folder (after its
 * subfolders): a folder whose print (names, types, modes, stat keys, link
 * targets, subfolders' prints) is the one the index recorded gets its digest
 * from there; one whose content is all known is digested at once (and
 * recorded); one waiting for files whose MD5 is unknown (copied this cycle)
 * waits for {@link finish}, which looks them up (a copy that passed through
 * the program learnt its MD5), then reads the rest if they are within
 * {@link DIGEST_BUDGET}.
 */
export class FolderDigests {
  readonly #index: PairIndex;
  readonly #observedAt: number;
  readonly #willLearn: (entry: Entry) => boolean;
  #unknown: UnknownFile[] = [];
  /** Unknown MD5s that would have to be read (not learnt by a copy): files and bytes. */
  #toRead = 0;
  #toReadBytes = 0;
  #held = 0;
  #gaveUp = false;

  /**
   * @param index where folder digests are recorded and found again.
   * @param observedAt when the walk started (epoch ms): a file changed after
   * that, or in the same second, leaves its folders' digests unrecorded.
   * @param willLearn whether a copy of this file, made this cycle, learns its
   * MD5 (its bytes pass through the program): such files are not counted
   * against {@link DIGEST_BUDGET} during the walk (default: none).
   */
  constructor(
    index: PairIndex,
    observedAt: number,
    willLearn: (entry: Entry) => boolean = () => false,
  ) {
    this.#index = index;
    this.#observedAt = observedAt;
    this.#willLearn = willLearn;
  }

  /** Whether the digest is given up for this cycle (too much unknown). */
  get gaveUp(): boolean {
    return this.#gaveUp;
  }

  /**
   * A folder's entries, all met (its subfolders' nodes included).
   *
   * @param dir the folder's path (`""`: the root).
   * @param children its entries, in name order.
   * @param complete whether its listing is complete (else its digest is never recorded).
   * @returns its node, or undefined once the digest is given up.
   */
  async folder(
    dir: string,
    children: readonly DigestChild[],
    complete: boolean,
  ): Promise<DigestNode | undefined> {
    if (this.#gaveUp) return undefined;
    const print = new Print();
    let cacheable = complete;
    for (const { name, entry, node } of children) {
      if (entry.kind === "other") continue;
      print.text(name).number(KIND[entry.kind]).number(entry.mode);
      if (entry.kind === "file") {
        print.number(entryPrint(entry));
        cacheable &&= isSettled(entry, this.#observedAt);
      } else if (entry.kind === "symlink") print.text(entry.target ?? "");
      else {
        if (node === undefined) return this.#giveUp(); // a subfolder's digest was given up
        const sub = resolved(node);
        if (sub === undefined) { // a hole, filled later
          cacheable = false;
          continue;
        }
        print.number(sub.print);
        cacheable &&= sub.cacheable;
      }
    }
    const node: DigestNode = { print: cacheable ? print.value() : NaN, cacheable };
    const cached = cacheable ? this.#index.folderDigest(dir, node.print) : undefined;
    if (cached !== undefined) return { ...node, digest: cached };
    // Not known: the MD5s the index vouches for are looked up now.
    children = children.map((child) =>
      child.vouched && child.md5 === undefined
        ? { ...child, md5: this.#index.md5In(dir, child.name) }
        : child
    );
    const known = children.every(({ entry, md5, node }) =>
      entry.kind === "file"
        ? md5 !== undefined
        : entry.kind === "dir"
        ? resolved(node!)?.digest !== undefined
        : true
    );
    if (known) {
      const lines = children.filter(({ entry }) => entry.kind !== "other")
        .map(({ name, entry, md5, node }) => entryLine(name, entry, md5 ?? resolved(node)?.digest));
      node.digest = await md5Of(lines);
      if (cacheable) this.#index.recordFolderDigest(dir, node.print, node.digest);
      return node;
    }
    const prefix = dir === "" ? "" : `${dir}/`;
    const parts: Part[] = [];
    for (const child of children) {
      const { name, entry, md5 } = child;
      if (entry.kind === "other") continue;
      if (entry.kind === "file" && md5 === undefined) {
        const file = { path: prefix + name, entry };
        this.#unknown.push(file);
        if (!this.#willLearn(entry)) {
          this.#toRead++;
          this.#toReadBytes += entry.size;
        }
        parts.push({ line: entryLine(name, entry, ""), file });
      } else if (entry.kind === "dir" && resolved(child.node)?.digest === undefined) {
        parts.push({ line: entryLine(name, entry, ""), node: child.node! });
      } else parts.push(entryLine(name, entry, md5 ?? resolved(child.node)?.digest));
    }
    this.#held += parts.length;
    // Beyond what a cycle may read, no folder's lines are held any more: the
    // digest is given up for this cycle (what the budget allows is still read).
    if (
      this.#held > MAX_HELD_LINES || this.#toRead > DIGEST_BUDGET.files ||
      this.#toReadBytes > DIGEST_BUDGET.bytes
    ) {
      return this.#giveUp();
    }
    node.pending = { dir, parts };
    return node;
  }

  /**
   * A place for a subfolder walked later (after the removals, when its type
   * changes): fill it with {@link fill}.
   *
   * @returns a node that stands for the subfolder until then.
   */
  hole(): DigestNode {
    return { print: NaN, cacheable: false, hole: true };
  }

  /**
   * The subfolder a {@link hole} stood for has been walked.
   *
   * @param hole the hole.
   * @param node what {@link folder} returned for the subfolder.
   */
  fill(hole: DigestNode, node: DigestNode | undefined): void {
    if (node === undefined) this.#giveUp();
    else hole.filled = node;
  }

  /**
   * The tree digest: the MD5s still unknown are looked up (with `lookup`),
   * the rest read (with `read`, which records them) when they are within
   * {@link DIGEST_BUDGET}; the folders waiting for them are digested.
   *
   * @param root the root folder's node.
   * @param read the MD5 of a source file, read now (undefined: it could not be read).
   * @param lookup the MD5 of a source file, when it is known without reading it.
   * @returns the tree digest, or why it is not computed: `"too much"` to read
   *   (nothing is read then), or a file that could not be read (`"unreadable"`).
   */
  async finish(
    root: DigestNode | undefined,
    read: (path: string, entry: Entry) => Promise<string | undefined>,
    lookup: (path: string, entry: Entry) => string | undefined = () => undefined,
  ): Promise<string | "too much" | "unreadable"> {
    if (root === undefined || this.#gaveUp) return "too much";
    const missing: UnknownFile[] = [];
    let bytes = 0;
    for (const file of this.#unknown) {
      file.md5 = lookup(file.path, file.entry);
      if (file.md5 !== undefined) continue;
      missing.push(file);
      bytes += file.entry.size;
    }
    if (missing.length > DIGEST_BUDGET.files || bytes > DIGEST_BUDGET.bytes) return "too much";
    for (const file of missing) {
      file.md5 = await read(file.path, file.entry);
      if (file.md5 === undefined) return "unreadable";
    }
    const digestOf = async (node: DigestNode): Promise<string | undefined> => {
      const at = resolved(node);
      if (at === undefined) return undefined; // a hole never filled
      if (at.digest !== undefined) return at.digest;
      const lines: string[] = [];
      for (const part of at.pending!.parts) {
        if (typeof part === "string") lines.push(part);
        else {
          const content = "file" in part ? part.file.md5 : await digestOf(part.node);
          if (content === undefined) return undefined;
          lines.push(`${part.line.slice(0, -1)}${content}\n`);
        }
      }
      at.digest = await md5Of(lines);
      return at.digest;
    };
    return await digestOf(root) ?? "too much";
  }

  /** Give the digest up for this cycle: no line is held, no file read for it. */
  #giveUp(): undefined {
    this.#gaveUp = true;
    this.#unknown = [];
    return undefined;
  }
}

/** The node itself, or for a hole the subfolder's (undefined while not filled). */
function resolved(node: DigestNode | undefined): DigestNode | undefined {
  return node?.hole ? resolved(node.filled) : node;
}

const KIND: Readonly<Record<Entry["kind"], number>> = { file: 1, dir: 2, symlink: 3, other: 4 };

/** A 53-bit print of a sequence of numbers and texts (not a cryptographic hash). */
class Print {
  #a = 0x811c9dc5;
  #b = 0x9e3779b9;

  text(text: string): this {
    for (let i = 0; i < text.length; i++) this.#mix(text.charCodeAt(i));
    return this.#mix(0x10000);
  }

  number(value: number): this {
    return this.#mix(value % 0x100000000 >>> 0).#mix(Math.floor(value / 0x100000000) >>> 0);
  }

  value(): number {
    let a = this.#a, b = this.#b;
    a = Math.imul(a ^ (a >>> 16), 0x85ebca6b);
    b = Math.imul(b ^ (b >>> 13), 0xc2b2ae35);
    a ^= b >>> 15;
    b ^= a >>> 16;
    return (a >>> 0) * 0x200000 + ((b >>> 0) >>> 11);
  }

  #mix(word: number): this {
    this.#a = Math.imul(this.#a ^ word, 0x01000193);
    this.#b = Math.imul(this.#b ^ word, 0x5bd1e995);
    this.#b ^= this.#b >>> 15;
    return this;
  }
}

let crypto: typeof import("node:crypto") | undefined;

/** The MD5 (hex) of `lines` joined. */
async function md5Of(lines: readonly string[]): Promise<string> {
  crypto ??= await import("node:crypto");
  const hash = crypto.createHash("md5");
  // One update per few thousand lines: each call into node:crypto costs more
  // than hashing a line.
  for (let i = 0; i < lines.length; i += 4096) hash.update(lines.slice(i, i + 4096).join(""));
  return hash.digest("hex");
}

function escape(text: string): string {
  if (!text.includes("\\") && !text.includes("\n")) return text;
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

const OCTAL = Array.from({ length: 0o10000 }, (_, mode) => mode.toString(8).padStart(4, "0"));

/**
 * Permission bits as four octal digits.
 *
 * @param mode the bits (`mode & 0o7777`).
 * @returns e.g. `"0644"`.
 */
export function octal(mode: number): string {
  return OCTAL[mode] ?? mode.toString(8).padStart(4, "0");
}

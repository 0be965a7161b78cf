/**
 * Which owners the mirror keeps, learnt as it runs: like `rsync -a`, owner
 * users only when it runs as root, groups wherever the system allows. A
 * change the system refuses is never an error: that user (not root after all)
 * or that group is left alone from then on.
 *
 * @module
 */
import type { Owner } from "../core/entry.ts";
import type { Owners } from "./plan.ts";

/** The {@link Owners} of one mirror, updated when a change is refused. */
export class OwnerPolicy implements Owners {
  readonly self: { readonly uid: number; readonly gid: number };
  users: boolean;
  readonly deniedGroups: Set<number>;

  readonly #remember: { usersDenied: boolean; readonly deniedGroups: Set<number> };

  /**
   * @param self the user and group a new entry gets here.
   * @param remember what was refused before, and is to be remembered (the
   * state: its `deniedGroups` set is added to here, `usersDenied` set).
   */
  constructor(
    self: { uid: number; gid: number },
    remember: { usersDenied: boolean; readonly deniedGroups: Set<number> } = {
      usersDenied: false,
      deniedGroups: new Set(),
    },
  ) {
    this.self = self;
    this.users = self.uid === 0 && !remember.usersDenied;
    this.deniedGroups = remember.deniedGroups;
    this.#remember = remember;
  }

  /** The part of an owner change that was refused (see `chownAsAllowed`): stop asking for it. */
  refused(part: Owner): void {
    if (part.uid !== undefined) {
      this.users = false;
      this.#remember.usersDenied = true;
    }
    if (part.gid !== undefined) this.deniedGroups.add(part.gid);
  }

  /**
   * The user and group a new file gets in `folder` (absolute; the process's
   * ids, or the folder's group where it is set-group-id), found by making and
   * removing a file named `probe` there; undefined when that fails.
   */
  static probe(folder: string, probe: string): { uid: number; gid: number } | undefined {
    const path = `${folder.replace(/\/$/, "")}/${probe}`;
    try {
      Deno.writeFileSync(path, new Uint8Array(0), { createNew: true });
      const info = Deno.lstatSync(path);
      return info.uid === null || info.gid === null ? undefined : { uid: info.uid, gid: info.gid };
    } catch {
      return undefined;
    } finally {
      try {
        Deno.removeSync(path);
      } catch {
        // never made
      }
    }
  }
}

import assert from "node:assert/strict";
import { getLogger } from "npm:@logtape/logtape@^2.4.2";
import { emptyTally, reportOutcome, reportSummary } from "../../lib/engine/report.ts";
import { withRecords } from "./unit_helpers.ts";

Deno.test("report: the summary says folder/folders, symlink/symlinks, warning/warnings", async () => {
  await withRecords((records) => {
    const one = {
      ...emptyTally(),
      copied: 1,
      created: 1,
      links: 1,
      attributes: 1,
      warnings: 1,
      bytes: 1,
    };
    const two = { ...emptyTally(), created: 2, links: 2, attributes: 2, warnings: 2, bytes: 2 };
    reportSummary(getLogger(["test"]), one, 1);
    reportSummary(getLogger(["test"]), two, 1, false, true);
    const text = records.map((r) => r.message.join(""));
    assert.match(
      text[0]!,
      /^Cycle finished: 1 copied, .* 1 folder created, 1 symlink made, 1 attribute update, 1 warning, 0 failed; 1 byte in/,
    );
    assert.match(
      text[1]!,
      /^Cycle stopped: .*2 folders created, 2 symlinks made, 2 attribute updates, 2 warnings, 0 failed; 2 bytes in/,
    );
  });
});

Deno.test("report: the replica root is 'replica folder NAME', never 'folder .' (#18)", async () => {
  await withRecords((records) => {
    const log = getLogger(["test"]);
    const action = { op: "folder", path: "", mode: 0o755, mtimeMs: 0, quiet: false } as const;
    reportOutcome(
      log,
      { status: "failed", action, error: new Error("Operation not permitted") },
      "rep",
    );
    reportOutcome(log, { status: "done", action, bytes: 0 }, "rep");
    assert.deepEqual(records.map((r) => r.message.join("")), [
      "Could not set the attributes of replica folder rep: Operation not permitted.",
      "Attributes of replica folder rep have been updated.",
    ]);
  });
});

import assert from "node:assert/strict";
import { getLogger } from "npm:@logtape/logtape@^2.4.2";
import { emptyTally, reportSummary } from "../../lib/report.ts";
import { withRecords } from "./unit_helpers.ts";

Deno.test("report: the summary says folder/folders, symlink/symlinks, warning/warnings", async () => {
  await withRecords((records) => {
    const one = { ...emptyTally(), copied: 1, created: 1, links: 1, warnings: 1, bytes: 1 };
    const two = { ...emptyTally(), created: 2, links: 2, warnings: 2, bytes: 2 };
    reportSummary(getLogger(["test"]), one, 1);
    reportSummary(getLogger(["test"]), two, 1);
    const text = records.map((r) => r.message.join(""));
    assert.match(
      text[0]!,
      /1 copied, .* 1 folder created, 1 symlink made, 1 warning, 0 failed; 1 byte in/,
    );
    assert.match(text[1]!, /2 folders created, 2 symlinks made, 2 warnings, 0 failed; 2 bytes in/);
  });
});

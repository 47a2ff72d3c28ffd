import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * vitest globalSetup: one folder for everything a test run writes (gateways' data, agents' model
 * stores), inherited by the test workers through BETA9_TEST_TMP and removed when the run ends.
 */
export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), "b9-test-run-"));
  process.env.BETA9_TEST_TMP = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}

import { execFileSync } from "node:child_process";
import { BIN } from "@beta9/test-utils";
import { describe, expect, it } from "vitest";

/** `b9gateway --help` as a person reads it: durations written the way the flags take them. */
describe("b9gateway --help", () => {
  it('shows default durations as the README writes them ("5s", not 5000)', () => {
    const help = execFileSync(process.execPath, [BIN.gateway, "--help"], { encoding: "utf8" }).replace(
      /\s+/g,
      " ",
    );
    for (const [flag, shown] of [
      ["--heartbeat-interval", "5s"],
      ["--unhealthy-after", "12s"],
      ["--offline-after", "1m"],
      ["--cold-start-timeout", "5m"],
      ["--usage-retention", "90d"],
      ["--shutdown-grace", "30s"],
      ["--client-stall-timeout", "10s"],
    ]) {
      expect(help).toMatch(new RegExp(`${flag} <duration> [^-]*\\(default: ${shown}\\)`));
    }
  });
});

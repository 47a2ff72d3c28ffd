import { MachineStatuses } from "@beta9/protocol";
import { describe, expect, it } from "vitest";
import { heartbeatAckLine } from "../src/channel/agent-channel.ts";

describe("heartbeat ack lines", () => {
  it("are the bytes of the ack's JSON and a newline, for every status and interval", () => {
    for (const interval of [5, 0.5, 30, 5])
      for (const status of MachineStatuses)
        for (const seq of [0, 1, 41, 2 ** 40]) {
          const line = heartbeatAckLine(seq, status, interval);
          expect(line).toBe(`${JSON.stringify({ seq, status, heartbeat_interval_seconds: interval })}\n`);
        }
  });
});

import { readFileSync } from "node:fs";
import { request } from "node:http";
import {
  AGENT_PROTOCOL,
  AGENT_PROTOCOL_HEADER,
  AGENT_PROTOCOL_MIN,
  AGENT_VERSION_HEADER,
  CHANNEL_PATH,
  CHANNEL_PROTOCOL,
  MACHINE_ID_HEADER,
} from "@beta9/protocol";
import { type GatewayProc, initAgent, startAgent, startGateway, waitFor } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { hardware } from "./harness.ts";

/*
 * Versions between agents and the gateway: an agent that speaks a protocol the gateway cannot is
 * refused at join and on the channel with one sentence naming both versions and what to upgrade,
 * and nothing is made for it. Real clients of the join and channel protocol that claim another
 * version, beside a real agent that the gateway lists with its version.
 */

let gw: GatewayProc;
beforeAll(async () => {
  gw = await startGateway();
}, 60_000);
afterAll(async () => {
  await gw?.proc.stop();
});

async function joinAs(protocol: number | undefined, machineId: string) {
  const token = (await gw.api<{ token: string }>("POST", "/api/v1/tokens", {})).body.token;
  const res = await fetch(`${gw.url}/api/v1/machines/join`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      token,
      machine_id: machineId,
      hostname: "elsewhere",
      agent_version: "9.0.0",
      ...(protocol === undefined ? {} : { protocol }),
      hardware,
    }),
  });
  return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
}

const machineIds = async () =>
  (await gw.api<{ machines: { id: string }[] }>("GET", "/api/v1/machines")).body.machines.map((m) => m.id);

describe("agent and gateway versions", () => {
  it("refuses to join an agent that speaks a newer protocol, naming both versions; nothing is made for it", async () => {
    const res = await joinAs(AGENT_PROTOCOL + 1, "from-the-future");
    expect(res.status).toBe(426);
    expect(res.body.error?.code).toBe("agent_unsupported");
    expect(res.body.error?.message).toBe(
      `this gateway (beta9 0.1.0) speaks agent protocol ${AGENT_PROTOCOL_MIN}-${AGENT_PROTOCOL}, and this agent (b9agent 9.0.0) speaks protocol ${AGENT_PROTOCOL + 1}: upgrade the gateway to beta9 9.0.0 or later, or run a b9agent of the gateway's version`,
    );
    expect(await machineIds()).not.toContain("from-the-future");
  });

  it("joins an agent from before the protocol was sent as protocol 1", async () => {
    const res = await joinAs(undefined, "older-agent");
    expect(res.status).toBe(201);
    expect(await machineIds()).toContain("older-agent");
  });

  it("refuses the channel to a joined machine whose agent now speaks another protocol, before its credential is used", async () => {
    const config = YAML.parse(readFileSync(await initAgent(gw, { name: "upgraded" }), "utf8")) as {
      machine: { id: string; token: string };
    };
    const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(`${gw.url}${CHANNEL_PATH}`, {
        headers: {
          connection: "Upgrade",
          upgrade: CHANNEL_PROTOCOL,
          authorization: `Bearer ${config.machine.token}`,
          [MACHINE_ID_HEADER]: config.machine.id,
          [AGENT_PROTOCOL_HEADER]: String(AGENT_PROTOCOL + 5),
          [AGENT_VERSION_HEADER]: "7.1.0",
        },
      });
      req.on("response", (res) => {
        let text = "";
        res.on("data", (c) => {
          text += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on("upgrade", () => reject(new Error("the channel accepted an agent of another protocol")));
      req.on("error", reject);
      req.end();
    });
    expect(answer.status).toBe(426);
    expect(JSON.parse(answer.text).error.message).toContain(
      `this agent (b9agent 7.1.0) speaks protocol ${AGENT_PROTOCOL + 5}`,
    );
  });

  it("lists each machine with its agent's version", async () => {
    const path = await initAgent(gw, { name: "current" });
    const agent = await startAgent(path);
    try {
      await waitFor(
        async () =>
          (
            await gw.api<{ machines: { name: string; status: string; agent_version: string }[] }>(
              "GET",
              "/api/v1/machines",
            )
          ).body.machines.some(
            (m) => m.name === "current" && m.status === "READY" && m.agent_version === "0.1.0",
          ),
        { what: "the real agent READY with its version" },
      );
    } finally {
      await agent.proc.stop();
    }
  }, 60_000);
});

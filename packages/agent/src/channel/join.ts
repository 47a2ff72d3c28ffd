import https from "node:https";
import { hostname } from "node:os";
import { nodeHttp as http } from "@beta9/http/node-http";
import {
  AGENT_PROTOCOL,
  BETA9_VERSION,
  type ErrorBody,
  type Hardware,
  type JoinRequest,
  type JoinResponse,
} from "@beta9/protocol";
import { type AgentConfig, gatewayUrl } from "../config/config-file.ts";
import { explainTlsFailure, gatewayCa } from "./tls.ts";

export class GatewayRefused extends Error {
  readonly code: string;
  readonly status: number;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "GatewayRefused";
    this.status = status;
    this.code = code;
  }
}

/** Trade the join token for a machine credential bound to this machine id. */
export async function join(
  cfg: AgentConfig,
  hardware: Hardware,
  signal?: AbortSignal,
): Promise<JoinResponse> {
  if (!cfg.machine.join_token) throw new GatewayRefused(0, "no_join_token", "no join token to join with");
  const body: JoinRequest = {
    token: cfg.machine.join_token,
    machine_id: cfg.machine.id,
    name: cfg.machine.name,
    hostname: cfg.machine.hostname || hostname(),
    agent_version: BETA9_VERSION,
    protocol: AGENT_PROTOCOL,
    hardware,
    ...(cfg.machine.country ? { country: cfg.machine.country } : {}),
    // Joining again under this id: the current credential proves the id is ours.
    ...(cfg.machine.token ? { credential: cfg.machine.token } : {}),
  };
  const res = await postJson(
    new URL("/api/v1/machines/join", gatewayUrl(cfg)),
    body,
    gatewayCa(cfg),
    signal ?? AbortSignal.timeout(30_000),
  );
  const json = res.json as Partial<JoinResponse> & Partial<ErrorBody>;
  if (res.status < 200 || res.status > 299 || !json.credential) {
    throw new GatewayRefused(
      res.status,
      json.error?.code ?? "unknown",
      json.error?.message ?? `join answered ${res.status}`,
    );
  }
  return json as JoinResponse;
}

/**
 * POST JSON over http(s), trusting `ca` besides the system's CAs (fetch cannot be given one without
 * a dispatcher of its own). A certificate it cannot verify fails with a sentence saying so.
 */
function postJson(
  url: URL,
  body: unknown,
  ca: Buffer | undefined,
  signal: AbortSignal,
): Promise<{ status: number; json: unknown }> {
  const text = JSON.stringify(body);
  const mod = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(url, {
      method: "POST",
      signal,
      ...(ca ? { ca } : {}),
      headers: { "content-type": "application/json", "content-length": Buffer.byteLength(text) },
    });
    req.on("response", (res) => {
      let answer = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        if (answer.length < 1024 * 1024) answer += c;
      });
      res.on("error", reject);
      res.on("end", () => {
        let json: unknown = {};
        try {
          json = JSON.parse(answer);
        } catch {}
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on("error", (err) => reject(explainTlsFailure(err)));
    req.end(text);
  });
}

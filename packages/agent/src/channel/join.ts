import { hostname } from "node:os";
import {
  BETA9_VERSION,
  type ErrorBody,
  type Hardware,
  type JoinRequest,
  type JoinResponse,
} from "@beta9/protocol";
import { type AgentConfig, gatewayUrl } from "../config/config-file.ts";

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
    hardware,
    ...(cfg.machine.country ? { country: cfg.machine.country } : {}),
    // Joining again under this id: the current credential proves the id is ours.
    ...(cfg.machine.token ? { credential: cfg.machine.token } : {}),
  };
  const res = await fetch(`${gatewayUrl(cfg)}/api/v1/machines/join`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: signal ?? AbortSignal.timeout(30_000),
  });
  const json = (await res.json().catch(() => ({}))) as Partial<JoinResponse> & Partial<ErrorBody>;
  if (!res.ok || !json.credential) {
    throw new GatewayRefused(
      res.status,
      json.error?.code ?? "unknown",
      json.error?.message ?? `join answered ${res.status}`,
    );
  }
  return json as JoinResponse;
}

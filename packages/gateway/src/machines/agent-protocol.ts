import { AGENT_PROTOCOL, AGENT_PROTOCOL_MIN, BETA9_VERSION, Beta9Error } from "@beta9/protocol";

/**
 * Refuses an agent whose protocol this gateway cannot speak, naming both versions and which side to
 * upgrade. `protocol` absent: an agent from before it was sent, which speaks protocol 1.
 */
export function checkAgentProtocol(protocol: number | undefined, agentVersion: string): void {
  const p = protocol ?? 1;
  if (p >= AGENT_PROTOCOL_MIN && p <= AGENT_PROTOCOL) return;
  const range =
    AGENT_PROTOCOL_MIN === AGENT_PROTOCOL ? `${AGENT_PROTOCOL}` : `${AGENT_PROTOCOL_MIN}-${AGENT_PROTOCOL}`;
  const what = `this gateway (beta9 ${BETA9_VERSION}) speaks agent protocol ${range}, and this agent (b9agent ${agentVersion.slice(0, 64)}) speaks protocol ${p}`;
  throw new Beta9Error(
    "agent_unsupported",
    p > AGENT_PROTOCOL
      ? `${what}: upgrade the gateway to beta9 ${agentVersion.slice(0, 64)} or later, or run a b9agent of the gateway's version`
      : `${what}: upgrade b9agent to beta9 ${BETA9_VERSION}`,
  );
}

/** A header's number, when it is one (the channel's upgrade carries the protocol as text). */
export function protocolHeader(v: string | string[] | undefined): number | undefined {
  if (typeof v !== "string" || !/^\d{1,7}$/.test(v)) return undefined;
  return Number(v);
}

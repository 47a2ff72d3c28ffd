import type { IncomingMessage } from "node:http";
import { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { bearerToken, type Logger, requestIdOf, toErrorReply } from "@beta9/http";
import {
  AGENT_PROTOCOL_HEADER,
  AGENT_VERSION_HEADER,
  Beta9Error,
  CHANNEL_PATH,
  CHANNEL_PROTOCOL,
  IDLE_CHANNEL_PROTOCOL,
  MACHINE_ID_HEADER,
} from "@beta9/protocol";
import type { Store } from "@beta9/store";
import type { Audit } from "../audit/audit.ts";
import { refusalEvent } from "../auth/security-events.ts";
import type { TrustedProxies } from "../http/trusted-proxies.ts";
import { checkAgentProtocol, protocolHeader } from "../machines/agent-protocol.ts";
import { verifyMachineCredential } from "../machines/credentials.ts";
import type { MachineRegistry } from "../machines/registry.ts";
import { AgentChannel } from "./agent-channel.ts";

interface UpgradeDeps {
  store: Store;
  registry: MachineRegistry;
  log: Logger;
  proxies: TrustedProxies;
  audit: Audit;
}

const ID_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;

/**
 * Handles `Upgrade: beta9-agent-h2` on CHANNEL_PATH: checks the machine credential, answers 101 and
 * hands the socket to an AgentChannel (HTTP/2 the gateway drives, or lines first for protocol 2). Anything else is refused in plain HTTP
 * with our JSON error, and the socket closed.
 */
export function channelUpgradeHandler(deps: UpgradeDeps) {
  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on("error", destroySocket);
    void accept(deps, req, socket, head).catch(async (err: unknown) => {
      const { status, body } = toErrorReply(err);
      if (status >= 500) deps.log.error({ err }, "agent channel upgrade failed");
      refuse(socket, status, body);
      // A refused machine credential (or one bound to another machine) is a security event.
      const machineId = req.headers[MACHINE_ID_HEADER];
      const event = await refusalEvent(deps, err, {
        requestId: requestIdOf(req),
        ip: deps.proxies.clientAddress(req.socket.remoteAddress, req.headers["x-forwarded-for"]),
        route: `UPGRADE ${CHANNEL_PATH}`,
        secret: bearerToken(req.headers.authorization),
        machineId: typeof machineId === "string" ? machineId.slice(0, 64) : undefined,
      });
      if (event) deps.audit.enqueue(event);
    });
  };
}

async function accept(deps: UpgradeDeps, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  const path = (req.url ?? "").split("?")[0];
  if (path !== CHANNEL_PATH || req.headers.upgrade?.toLowerCase() !== CHANNEL_PROTOCOL) {
    throw new Beta9Error(
      "bad_request",
      `upgrade is only offered on ${CHANNEL_PATH} with protocol ${CHANNEL_PROTOCOL}`,
    );
  }
  const machineId = req.headers[MACHINE_ID_HEADER];
  if (typeof machineId !== "string" || !ID_PATTERN.test(machineId)) {
    throw new Beta9Error("bad_request", `send the machine id in the ${MACHINE_ID_HEADER} header`);
  }
  // Before the credential: an agent upgraded past this gateway is told so, not left retrying in silence.
  const version = req.headers[AGENT_VERSION_HEADER];
  const protocol = protocolHeader(req.headers[AGENT_PROTOCOL_HEADER]) ?? 1;
  checkAgentProtocol(protocol, typeof version === "string" ? version : "of an unknown version");
  const remote = deps.proxies.clientAddress(req.socket.remoteAddress, req.headers["x-forwarded-for"]);
  const machine = await verifyMachineCredential(
    deps,
    machineId,
    bearerToken(req.headers.authorization),
    remote,
  );
  if (socket.destroyed) return;
  // A machine that joined through another gateway replica since this one loaded the store.
  if (!deps.registry.get(machineId)) deps.registry.put(machine);
  // HTTP/2 takes the socket over only once the 101 is written: over TLS the write is still queued
  // now, and a session adopting the socket under it aborts the process (a Node assertion).
  // The 101 says which form the channel starts in: protocol 2 agents get the idle form (lines).
  const idleForm = protocol >= IDLE_CHANNEL_PROTOCOL && socket instanceof Socket;
  await new Promise<void>((resolve, reject) =>
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${CHANNEL_PROTOCOL}\r\n` +
        `${AGENT_PROTOCOL_HEADER}: ${idleForm ? IDLE_CHANNEL_PROTOCOL : 1}\r\n\r\n`,
      (err) => (err ? reject(err) : resolve()),
    ),
  );
  if (socket.destroyed) return;
  if (head.length > 0) socket.unshift(head);
  const channel = new AgentChannel(socket, machineId, deps.registry, deps.log, idleForm);
  channel.open();
  deps.log.info({ machine_id: machineId, remote }, "agent connected");
}

/**
 * A listener that closes over nothing: an arrow function here would share its scope with the one that
 * uses `req`, and keep the upgrade request (its headers, the credential) as long as the channel lives.
 */
function destroySocket(this: Duplex): void {
  this.destroy();
}

function refuse(socket: Duplex, status: number, body: unknown): void {
  if (socket.destroyed) return;
  const json = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${status === 401 ? "Unauthorized" : status === 403 ? "Forbidden" : "Bad Request"}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`,
  );
}

import { type Static, Type } from "typebox";
import { JobRunners, Usage } from "./hardware.ts";
import { InferenceReport } from "./inference.ts";
import { MachineStatus } from "./machine.ts";

/**
 * The agent channel (docs/architecture.md §3). The agent opens an HTTP/1.1 request to
 * CHANNEL_PATH with `Upgrade: CHANNEL_PROTOCOL`; after `101 Switching Protocols` the gateway is an
 * HTTP/2 client and the agent an HTTP/2 server on that one socket. Every gateway→agent call is then an
 * ordinary HTTP/2 request to the agent's control API.
 */
export const CHANNEL_PATH = "/api/v1/agent/channel";
export const CHANNEL_PROTOCOL = "beta9-agent-h2";
export const MACHINE_ID_HEADER = "x-beta9-machine-id";

/**
 * A conversion made once for the pool: a machine given a pull with `pool` (InferencePullRequest)
 * fetches `GET POOL_COPY_PATH/<sha256>` from the gateway that sent it, with its machine credential,
 * MACHINE_ID_HEADER and the pull's ticket in POOL_TICKET_HEADER (Range for a resume). The gateway
 * relays the bytes from the machine holding them: `GET AGENT_BLOB_PATH/<sha256>?owner=…` on that
 * machine's channel, which only the gateway may call.
 */
export const POOL_COPY_PATH = "/api/v1/agent/copies";
export const POOL_TICKET_HEADER = "x-beta9-pool-ticket";
export const AGENT_BLOB_PATH = "/models/blobs";
/**
 * A converted directory (safetensors, MLX) goes file by file: `GET POOL_COPY_PATH/<sha256>/<file>` at
 * the gateway, `GET AGENT_CONVERTED_PATH/<sha256>/<file>?owner=…` at the holder, where `<sha256>` is
 * over the directory's files and `b9-conversion.json` lists them (name, sha256, size).
 */
export const AGENT_CONVERTED_PATH = "/models/converted";

/**
 * From agent protocol 2 the channel starts in its idle form: after the 101 (which carries the
 * protocol the gateway chose in AGENT_PROTOCOL_HEADER) the socket carries NDJSON lines, no HTTP/2.
 * The agent writes Heartbeat lines, the gateway HeartbeatAck lines. When the gateway has a request
 * for the agent it writes `{"switch":"h2"}`; the agent answers the same line and then waits for the
 * gateway's HTTP/2 preface; from there the channel is HTTP/2 as in protocol 1. Neither side writes
 * another line after its switch line. An HTTP/2 session left idle gets `{"switch":"idle"}` on the
 * heartbeat stream: the agent dials a new channel (idle form) and the gateway closes the old one
 * once the new one is up, letting anything still running on it finish.
 */
export const IDLE_CHANNEL_PROTOCOL = 2;
export const ChannelSwitch = Type.Object({ switch: Type.Union([Type.Literal("h2"), Type.Literal("idle")]) });
export type ChannelSwitch = Static<typeof ChannelSwitch>;
/** Longest line either side accepts on the channel (a heartbeat with many models is a few KB). */
export const CHANNEL_MAX_LINE = 64 * 1024;

/**
 * Heartbeats flow on one long-lived stream the gateway opens on the channel: the agent writes one
 * Heartbeat per line on the response, the gateway writes one HeartbeatAck per line on the request.
 */
export const HEARTBEAT_STREAM_PATH = "/agent/v1/heartbeats";

export const Heartbeat = Type.Object({
  seq: Type.Integer({ minimum: 0 }),
  /** Agent's wall clock, ms since epoch; used only to report delivery delay. */
  sent_at_ms: Type.Number(),
  usage: Usage,
  running_jobs: Type.Integer({ minimum: 0 }),
  inference_status: Type.String({ maxLength: 32 }),
  /** Engines, served models with their memory, free memory and VRAM (for placement). */
  inference: Type.Optional(InferenceReport),
  /** The job runners the machine has (older agents send none). */
  runners: Type.Optional(JobRunners),
});
export type Heartbeat = Static<typeof Heartbeat>;

export const HeartbeatAck = Type.Object({
  seq: Type.Integer({ minimum: 0 }),
  status: MachineStatus,
  heartbeat_interval_seconds: Type.Number(),
});
export type HeartbeatAck = Static<typeof HeartbeatAck>;

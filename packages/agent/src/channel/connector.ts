import https from "node:https";
import type { Duplex } from "node:stream";
import { TLSSocket } from "node:tls";
import type { Logger } from "@beta9/http";
import { nodeHttp as http } from "@beta9/http/node-http";
import {
  AGENT_PROTOCOL,
  AGENT_PROTOCOL_HEADER,
  AGENT_VERSION_HEADER,
  BETA9_VERSION,
  CHANNEL_PATH,
  CHANNEL_PROTOCOL,
  type ErrorBody,
  IDLE_CHANNEL_PROTOCOL,
  MACHINE_ID_HEADER,
} from "@beta9/protocol";
import { type AgentConfig, addressUrl, gatewayAddresses } from "../config/config-file.ts";
import type { AgentState } from "../state.ts";
import { Backoff, sleep } from "./backoff.ts";
import type { HeartbeatContext } from "./heartbeat-stream.ts";
import { serveIdleChannel } from "./idle-channel.ts";
import { GatewayRefused } from "./join.ts";
import { explainTlsFailure, GatewayUntrusted, gatewayCa } from "./tls.ts";

/** Codes after which dialling again cannot help: the credential itself is no good. */
const CREDENTIAL_REJECTED = new Set(["machine_unknown", "credential_invalid", "credential_machine_mismatch"]);

export interface ConnectorDeps {
  config: () => AgentConfig;
  state: AgentState;
  log: Logger;
  /** Hand the upgraded socket to the HTTP/2 control server. */
  serve: (socket: Duplex) => void;
  /** What the idle form of the channel beats with (protocol 2); without it, HTTP/2 from the start. */
  heartbeats?: HeartbeatContext;
  /** The gateway no longer accepts our credential: join again, or throw to give up. */
  rejoin: (reason: GatewayRefused) => Promise<void>;
  backoff?: Backoff;
}

/**
 * Keeps the agent channel up: dial, upgrade, serve HTTP/2 on the socket until it closes, wait with
 * backoff and jitter, dial again. Joins again only when the gateway says the credential is unknown.
 * With several gateway replicas, a lost channel is dialled again where it was; a replica that cannot
 * be reached is passed over for the next at once, and the backoff waits only after every replica
 * failed in turn, so the agent moves within one wait when its replica dies.
 */
export class Connector {
  readonly #deps: ConnectorDeps;
  readonly #backoff: Backoff;
  readonly #abort = new AbortController();
  #socket: Duplex | undefined;
  /** Channels we left for a new idle one; the gateway closes them once what runs on them is done. */
  readonly #retired = new Set<Duplex>();
  /** Ends the wait on the current channel: the gateway asked for a new one in the idle form. */
  #redial: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  /** Which of the configured gateways is dialled next. */
  #current = 0;

  constructor(deps: ConnectorDeps) {
    this.#deps = deps;
    this.#backoff = deps.backoff ?? new Backoff();
  }

  start(): Promise<void> {
    this.#loop ??= this.#run();
    return this.#loop;
  }

  /** Drop the current channel; the loop dials again. */
  drop(): void {
    this.#socket?.destroy();
  }

  /** Dial a new channel (it starts idle) and leave this one to the gateway to close. */
  redial(): void {
    this.#redial?.();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    this.#socket?.destroy();
    for (const socket of this.#retired) socket.destroy();
    await this.#loop?.catch(() => {});
  }

  async #run(): Promise<void> {
    const { state, log } = this.#deps;
    const signal = this.#abort.signal;
    // Replicas that failed in a row since the last channel: a full round of them means back off.
    let failedInRow = 0;
    while (!signal.aborted) {
      const gateways = gatewayAddresses(this.#deps.config());
      const gateway = addressUrl(gateways[this.#current % gateways.length]!);
      try {
        const socket = await this.#dial(gateway, signal);
        this.#socket = socket;
        failedInRow = 0;
        state.gateway = gateway;
        state.gatewayConnected = true;
        log.info({ gateway }, "connected to gateway");
        const openedAt = Date.now();
        const redialed = await new Promise<boolean>((resolve) => {
          socket.once("close", () => resolve(false));
          this.#redial = () => resolve(true);
        });
        this.#redial = undefined;
        if (redialed) {
          this.#retired.add(socket);
          socket.once("close", () => this.#retired.delete(socket));
          log.debug({ gateway }, "gateway asked for an idle channel; dialling it");
          continue;
        }
        state.gatewayConnected = false;
        state.status = "DISCONNECTED";
        if (signal.aborted) break;
        // A channel that lived a while was a success: start the backoff over.
        if (Date.now() - openedAt > 10_000) this.#backoff.reset();
        log.warn({ gateway }, "lost the gateway; reconnecting");
      } catch (err) {
        if (signal.aborted) break;
        state.gatewayConnected = false;
        state.status = "DISCONNECTED";
        if (err instanceof GatewayRefused && CREDENTIAL_REJECTED.has(err.code)) {
          log.warn({ code: err.code }, `gateway refused this machine's credential: ${err.message}`);
          await this.#deps.rejoin(err); // throws when it cannot
          this.#backoff.reset();
          continue;
        }
        if (err instanceof GatewayUntrusted) log.error({ gateway }, err.message);
        // Versions that do not match: said plainly, and tried again (the other side may be upgraded meanwhile).
        else if (err instanceof GatewayRefused && err.code === "agent_unsupported")
          log.error({ gateway, code: err.code }, `${err.message}; will retry`);
        else log.warn({ gateway, err: describe(err) }, "cannot reach the gateway; will retry");
        if (gateways.length > 1) {
          this.#current = (this.#current + 1) % gateways.length;
          if (++failedInRow % gateways.length !== 0) continue; // the next replica, now
        }
      }
      state.reconnects++;
      await sleep(this.#backoff.next(), signal);
    }
  }

  #dial(gateway: string, signal: AbortSignal): Promise<Duplex> {
    const cfg = this.#deps.config();
    const url = new URL(CHANNEL_PATH, gateway);
    const mod = url.protocol === "https:" ? https : http;
    const ca = gatewayCa(cfg);
    return new Promise((resolve, reject) => {
      const req = mod.request(url, {
        method: "GET",
        signal,
        timeout: 15_000,
        ...(ca ? { ca } : {}),
        headers: {
          connection: "Upgrade",
          upgrade: CHANNEL_PROTOCOL,
          authorization: `Bearer ${cfg.machine.token}`,
          [MACHINE_ID_HEADER]: cfg.machine.id,
          [AGENT_PROTOCOL_HEADER]: String(AGENT_PROTOCOL),
          [AGENT_VERSION_HEADER]: BETA9_VERSION,
        },
      });
      req.on("upgrade", (res, socket, head) => {
        socket.setTimeout(0);
        socket.setKeepAlive(true, 10_000);
        // Answers are many small HTTP/2 frames: Nagle's wait for an ACK would hold each one back.
        socket.setNoDelay(true);
        socket.once("end", () => socket.destroy());
        if (head.length > 0) socket.unshift(head);
        // HTTP/2 was agreed by the Upgrade over HTTP/1.1, not by ALPN; Node's HTTP/2 server would
        // refuse a TLS socket that negotiated none ("Missing ALPN Protocol"), so say h2 was.
        if (socket instanceof TLSSocket) socket.alpnProtocol = "h2";
        // A gateway of protocol 2 says so in its 101 and starts the channel idle; older ones speak HTTP/2.
        const heartbeats = this.#deps.heartbeats;
        if (heartbeats && Number(res.headers[AGENT_PROTOCOL_HEADER]) >= IDLE_CHANNEL_PROTOCOL)
          serveIdleChannel(socket, { heartbeats, serve: this.#deps.serve, log: this.#deps.log });
        else this.#deps.serve(socket);
        resolve(socket);
      });
      req.on("response", (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          if (text.length < 64 * 1024) text += c;
        });
        res.on("end", () => {
          let body: Partial<ErrorBody> = {};
          try {
            body = JSON.parse(text) as ErrorBody;
          } catch {}
          reject(
            new GatewayRefused(
              res.statusCode ?? 0,
              body.error?.code ?? "unexpected_response",
              body.error?.message ?? `gateway answered ${res.statusCode} instead of switching protocols`,
            ),
          );
        });
      });
      req.on("timeout", () => req.destroy(new Error("timed out opening the agent channel")));
      req.on("error", (err) => reject(explainTlsFailure(err)));
      req.end();
    });
  }
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code} ${e.message}` : String(e.message ?? err);
}

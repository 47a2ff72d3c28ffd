import http from "node:http";
import https from "node:https";
import type { Duplex } from "node:stream";
import type { Logger } from "@beta9/http";
import { CHANNEL_PATH, CHANNEL_PROTOCOL, type ErrorBody, MACHINE_ID_HEADER } from "@beta9/protocol";
import { type AgentConfig, gatewayUrl } from "../config/config-file.ts";
import type { AgentState } from "../state.ts";
import { Backoff, sleep } from "./backoff.ts";
import { GatewayRefused } from "./join.ts";

/** Codes after which dialling again cannot help: the credential itself is no good. */
const CREDENTIAL_REJECTED = new Set(["machine_unknown", "credential_invalid", "credential_machine_mismatch"]);

export interface ConnectorDeps {
  config: () => AgentConfig;
  state: AgentState;
  log: Logger;
  /** Hand the upgraded socket to the HTTP/2 control server. */
  serve: (socket: Duplex) => void;
  /** The gateway no longer accepts our credential: join again, or throw to give up. */
  rejoin: (reason: GatewayRefused) => Promise<void>;
  backoff?: Backoff;
}

/**
 * Keeps the agent channel up: dial, upgrade, serve HTTP/2 on the socket until it closes, wait with
 * backoff and jitter, dial again. Joins again only when the gateway says the credential is unknown.
 */
export class Connector {
  readonly #deps: ConnectorDeps;
  readonly #backoff: Backoff;
  readonly #abort = new AbortController();
  #socket: Duplex | undefined;
  #loop: Promise<void> | undefined;

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

  async stop(): Promise<void> {
    this.#abort.abort();
    this.#socket?.destroy();
    await this.#loop?.catch(() => {});
  }

  async #run(): Promise<void> {
    const { state, log } = this.#deps;
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      try {
        const socket = await this.#dial(signal);
        this.#socket = socket;
        state.gatewayConnected = true;
        log.info({ gateway: state.gateway }, "connected to gateway");
        const openedAt = Date.now();
        await new Promise<void>((resolve) => socket.once("close", () => resolve()));
        state.gatewayConnected = false;
        state.status = "DISCONNECTED";
        if (signal.aborted) break;
        // A channel that lived a while was a success: start the backoff over.
        if (Date.now() - openedAt > 10_000) this.#backoff.reset();
        log.warn({ gateway: state.gateway }, "lost the gateway; reconnecting");
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
        log.warn({ gateway: state.gateway, err: describe(err) }, "cannot reach the gateway; will retry");
      }
      state.reconnects++;
      await sleep(this.#backoff.next(), signal);
    }
  }

  #dial(signal: AbortSignal): Promise<Duplex> {
    const cfg = this.#deps.config();
    const url = new URL(CHANNEL_PATH, gatewayUrl(cfg));
    const mod = url.protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(url, {
        method: "GET",
        signal,
        timeout: 15_000,
        headers: {
          connection: "Upgrade",
          upgrade: CHANNEL_PROTOCOL,
          authorization: `Bearer ${cfg.machine.token}`,
          [MACHINE_ID_HEADER]: cfg.machine.id,
        },
      });
      req.on("upgrade", (_res, socket, head) => {
        socket.setTimeout(0);
        socket.setKeepAlive(true, 10_000);
        // Answers are many small HTTP/2 frames: Nagle's wait for an ACK would hold each one back.
        socket.setNoDelay(true);
        socket.once("end", () => socket.destroy());
        if (head.length > 0) socket.unshift(head);
        this.#deps.serve(socket);
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
      req.on("error", reject);
      req.end();
    });
  }
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code} ${e.message}` : String(e.message ?? err);
}

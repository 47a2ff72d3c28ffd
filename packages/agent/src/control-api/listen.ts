import { tailnetAddresses } from "../network/tailscale.ts";

/**
 * Where the control API listens: 127.0.0.1 always, plus this machine's Tailscale address when it has
 * one (the gateway can then reach it over the tailnet, as the fork did). `--listen` overrides:
 * "HOST", "HOST:PORT" or "[v6]:PORT", comma-separated.
 */
export function listenAddresses(
  port: number,
  explicit?: readonly string[],
): { host: string; port: number }[] {
  if (explicit && explicit.length > 0) return explicit.map((a) => parseListen(a, port));
  return [{ host: "127.0.0.1", port }, ...tailnetAddresses().map((host) => ({ host, port }))];
}

/** Whether the agent picks its own addresses (and so follows Tailscale), i.e. no `--listen` fixed them. */
export function followsTailnet(explicit?: readonly string[]): boolean {
  return !explicit || explicit.length === 0;
}

/** How often the agent looks for a tailnet address it does not listen on yet (Tailscale came up later). */
export function tailnetRecheckMs(env: NodeJS.ProcessEnv = process.env): number {
  const ms = Number(env.B9AGENT_TAILNET_RECHECK_MS);
  return Number.isFinite(ms) && ms > 0 ? ms : 30_000;
}

export function parseListen(text: string, defaultPort: number): { host: string; port: number } {
  const t = text.trim();
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  const m = v6 ?? /^([^:]+)(?::(\d+))?$/.exec(t);
  if (!m?.[1]) throw new Error(`--listen takes HOST or HOST:PORT, not ${JSON.stringify(text)}`);
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port in --listen ${text}`);
  return { host: m[1], port };
}

import { findTailscaleAddresses } from "../network/tailscale.ts";

/**
 * Where the control API listens: 127.0.0.1 always, plus this machine's Tailscale address when it has
 * one (the gateway can then reach it over the tailnet, as the seed did). `--listen` overrides:
 * "HOST", "HOST:PORT" or "[v6]:PORT", comma-separated.
 */
export function listenAddresses(
  port: number,
  explicit?: readonly string[],
): { host: string; port: number }[] {
  if (explicit && explicit.length > 0) return explicit.map((a) => parseListen(a, port));
  return [{ host: "127.0.0.1", port }, ...findTailscaleAddresses().map((host) => ({ host, port }))];
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

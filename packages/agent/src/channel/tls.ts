import { readFileSync } from "node:fs";
import { LazyDispatcher } from "@beta9/http/undici-lazy";
import { UNTRUSTED_CERTIFICATE_CODES } from "@beta9/protocol";
import type { AgentConfig } from "../config/config-file.ts";
import { ConfigError } from "../config/config-file.ts";

/** The gateway's certificate failed verification: dialling again cannot help until the config changes. */
export class GatewayUntrusted extends Error {
  override name = "GatewayUntrusted";
}

/** The CA of `gateway.ca_file`, to trust besides the system's; undefined when none is set. */
export function gatewayCa(cfg: AgentConfig): Buffer | undefined {
  const file = cfg.gateway.ca_file;
  if (!file) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(`cannot read gateway.ca_file ${file}: ${(err as Error).message}`);
  }
}

/** Connections to the gateway for undici (a pool copy's download), trusting gateway.ca_file; undefined without one. */
export function gatewayDispatcher(cfg: AgentConfig): LazyDispatcher | undefined {
  const ca = gatewayCa(cfg);
  return ca ? new LazyDispatcher((undici) => new undici.Agent({ connect: { ca } })) : undefined;
}

/** A TLS verification failure as a sentence that says what to do; other errors unchanged. */
export function explainTlsFailure(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (!code || !UNTRUSTED_CERTIFICATE_CODES.has(code)) return err;
  const why =
    code === "ERR_TLS_CERT_ALTNAME_INVALID" ? "it is for another name" : (err as Error).message || code;
  return new GatewayUntrusted(
    `the gateway's certificate is not trusted (${why}): pass the CA that signed it with gateway.ca_file in the agent config (b9agent init --ca-file FILE)`,
    { cause: err },
  );
}

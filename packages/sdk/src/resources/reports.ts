import type { AiActReport } from "@beta9/protocol";
import type { RequestOptions, Transport } from "../transport.ts";

export interface AiActFilter {
  /** The workspace, by name (another than the key's own: the operator's key). */
  workspace: string;
  from: Date | string;
  to: Date | string;
}

/** Documentation built from what the gateway recorded. Needs an admin key. */
export class Reports {
  readonly #http: Transport;
  constructor(http: Transport) {
    this.#http = http;
  }

  /**
   * The EU AI Act documentation pack of a workspace over [from, to): model inventory with provenance,
   * usage and energy, incidents, the audit log's verification, transparency, and what it leaves out.
   */
  async aiAct(filter: AiActFilter, options?: RequestOptions): Promise<AiActReport> {
    const iso = (t: Date | string) => (t instanceof Date ? t.toISOString() : t);
    return this.#http.get(
      "/api/v1/reports/ai-act",
      { workspace: filter.workspace, from: iso(filter.from), to: iso(filter.to) },
      options,
    );
  }
}

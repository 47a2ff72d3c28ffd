import type { AuditEventList, AuditEventView, AuditVerification } from "@beta9/protocol";
import type { RequestOptions, Transport } from "../transport.ts";

export interface AuditFilter {
  since?: Date | string;
  until?: Date | string;
  /** The actor's id: a key id, machine id or identity. */
  actor?: string;
  action?: string;
  /** "kind:id", e.g. "key:key_1a2b". */
  resource?: string;
  /** Another workspace, by name (the operator's key). */
  workspace?: string;
}

const iso = (t: Date | string | undefined) => (t instanceof Date ? t.toISOString() : t);

/** The gateway's audit log. Needs an admin key: a workspace's sees its own events, the operator's all. */
export class Audit {
  readonly #http: Transport;
  constructor(http: Transport) {
    this.#http = http;
  }

  /** One page of events; pass its `next` as `after` to read on, `follow` to wait for the next. */
  async list(
    filter: AuditFilter & { after?: string; limit?: number; follow?: boolean } = {},
    options?: RequestOptions,
  ): Promise<AuditEventList> {
    return this.#http.get(
      "/api/v1/audit",
      {
        since: iso(filter.since),
        until: iso(filter.until),
        actor: filter.actor,
        action: filter.action,
        resource: filter.resource,
        workspace: filter.workspace,
        after: filter.after,
        limit: filter.limit,
        follow: filter.follow ? "true" : undefined,
      },
      options,
    );
  }

  /** Every event matching, page by page; with `follow`, goes on with each new one until aborted. */
  async *events(
    filter: AuditFilter & { follow?: boolean } = {},
    options?: RequestOptions,
  ): AsyncGenerator<AuditEventView> {
    let after: string | undefined;
    for (;;) {
      const page = await this.list(
        { ...filter, after, limit: 1000, follow: filter.follow && after !== undefined },
        options,
      );
      yield* page.events;
      after = page.next ?? after;
      if (page.events.length < 1000 && !filter.follow) return;
    }
  }

  /** The log of a period as JSONL (events, checkpoints, prunes, public keys): the operator's. */
  async export(filter: Pick<AuditFilter, "since" | "until"> = {}, options?: RequestOptions): Promise<string> {
    const query = new URLSearchParams();
    if (filter.since !== undefined) query.set("since", iso(filter.since) ?? "");
    if (filter.until !== undefined) query.set("until", iso(filter.until) ?? "");
    const res = await this.#http.open({
      method: "GET",
      path: "/api/v1/audit/export",
      query: Object.fromEntries(query),
      options,
    });
    return res.text();
  }

  /** The gateway checks every chain: the first broken sequence number of each, if any. */
  async verify(options?: RequestOptions): Promise<AuditVerification> {
    return this.#http.get("/api/v1/audit/verify", undefined, options);
  }
}

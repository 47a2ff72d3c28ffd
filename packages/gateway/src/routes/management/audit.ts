import { setTimeout as sleep } from "node:timers/promises";
import {
  type AuditCheckpointView,
  AuditEventList,
  type AuditExportLine,
  AuditQuery,
  AuditVerification,
  Beta9Error,
  keyIdOf,
} from "@beta9/protocol";
import type { AuditCheckpoint } from "@beta9/store";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { eventView } from "../../audit/chain.ts";
import { verifyChains } from "../../audit/verify.ts";
import type { GatewayContext } from "../../context.ts";

const FOLLOW_MS = 25_000;
const FOLLOW_POLL_MS = 500;

const ExportQuery = Type.Object(
  {
    since: Type.Optional(Type.String({ format: "date-time" })),
    until: Type.Optional(Type.String({ format: "date-time" })),
  },
  { additionalProperties: false },
);

/**
 * Reading the audit log: `GET /api/v1/audit` (a workspace's admin sees its own events, the operator
 * all), `GET /api/v1/audit/export` (JSONL with the checkpoints and public keys, verifiable offline)
 * and `GET /api/v1/audit/verify` (the operator's).
 */
export const auditRoutes: FastifyPluginAsyncTypebox<GatewayContext & { publicKey: string }> = async (
  app,
  ctx,
) => {
  app.get(
    "/api/v1/audit",
    { schema: { querystring: AuditQuery, response: { 200: AuditEventList } } },
    async (req) => {
      const q = req.query;
      const caller = await ctx.auth.authenticate(req, "admin");
      let workspaceId: string | undefined = caller.operator ? undefined : caller.workspaceId;
      if (q.workspace !== undefined) {
        const named = await ctx.store.workspaces.byName(q.workspace);
        if (!caller.operator && named?.id !== caller.workspaceId)
          throw new Beta9Error(
            "forbidden",
            "only the pool's operator may read another workspace's audit events",
          );
        if (!named)
          throw new Beta9Error("not_found", `no workspace named ${q.workspace}; see \`b9 workspace list\``);
        workspaceId = named.id;
      }
      const after = cursor(q.after);
      const query = {
        since: time(q.since),
        until: time(q.until),
        actorId: q.actor,
        action: q.action,
        resource: q.resource,
        workspaceId,
        after,
        limit: q.limit === undefined ? 100 : Number(q.limit),
      };
      let rows = await ctx.store.audit.list(query);
      // Follow: wait for the next event, a poll at a time, until the client goes or the wait ends.
      const ends = Date.now() + FOLLOW_MS;
      while (q.follow === "true" && rows.length === 0 && Date.now() < ends && !req.raw.destroyed) {
        await sleep(FOLLOW_POLL_MS);
        rows = await ctx.store.audit.list(query);
      }
      const next = { ...after };
      for (const r of rows) next[r.chain] = Math.max(next[r.chain] ?? 0, Number(r.seq));
      return {
        events: rows.map(eventView),
        next: Object.keys(next).length > 0 ? Buffer.from(JSON.stringify(next)).toString("base64url") : null,
      };
    },
  );

  app.get("/api/v1/audit/export", { schema: { querystring: ExportQuery } }, async (req, reply) => {
    await ctx.auth.operator(req, "export the audit log");
    const since = time(req.query.since);
    const until = time(req.query.until);
    const lines: AuditExportLine[] = [
      {
        type: "export",
        since: req.query.since ?? null,
        until: req.query.until ?? null,
        exported_at: new Date().toISOString(),
      },
    ];
    const checkpoints = await ctx.store.audit.checkpoints();
    const keys = new Map<string, string>([[await keyIdOf(ctx.publicKey), ctx.publicKey]]);
    for (const c of checkpoints) keys.set(c.key_id, c.public_key);
    for (const [key_id, public_key] of keys) lines.push({ type: "public_key", key_id, public_key });
    // The events of the period, chain by chain, and the checkpoints among them.
    const seqs = new Map<string, { first: number; last: number }>();
    let after: Record<string, number> = {};
    for (;;) {
      const rows = await ctx.store.audit.list({ since, until, after, limit: 1000 });
      for (const r of rows) {
        lines.push({ type: "event", ...eventView(r) });
        const s = seqs.get(r.chain);
        seqs.set(r.chain, { first: s?.first ?? Number(r.seq), last: Number(r.seq) });
        after = { ...after, [r.chain]: Number(r.seq) };
      }
      if (rows.length < 1000) break;
    }
    for (const c of checkpoints) {
      const s = seqs.get(c.chain);
      if (s && Number(c.seq) >= s.first && Number(c.seq) <= s.last)
        lines.push({ type: "checkpoint", ...checkpointView(c) });
    }
    for (const p of await ctx.store.audit.prunes())
      lines.push({
        type: "prune",
        chain: p.chain,
        through_seq: Number(p.through_seq),
        at: new Date(Number(p.at)).toISOString(),
      });
    return reply.type("application/x-ndjson").send(`${lines.map((l) => JSON.stringify(l)).join("\n")}\n`);
  });

  app.get("/api/v1/audit/verify", { schema: { response: { 200: AuditVerification } } }, async (req) => {
    await ctx.auth.operator(req, "verify the audit log");
    return verifyChains(ctx.store);
  });
};

export function checkpointView(c: AuditCheckpoint): AuditCheckpointView {
  return {
    chain: c.chain,
    seq: Number(c.seq),
    hash: c.hash,
    at: new Date(Number(c.at)).toISOString(),
    signature: c.signature,
    key_id: c.key_id,
  };
}

function time(iso: string | undefined): number | undefined {
  return iso === undefined ? undefined : Date.parse(iso);
}

/** A list's `next`: base64url JSON of chain → last sequence number read. */
function cursor(after: string | undefined): Record<string, number> {
  if (after === undefined) return {};
  try {
    const parsed = JSON.parse(Buffer.from(after, "base64url").toString()) as unknown;
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
      const entries = Object.entries(parsed as Record<string, unknown>);
      if (entries.every(([, v]) => Number.isInteger(v)))
        return Object.fromEntries(entries) as Record<string, number>;
    }
  } catch {
    // Falls through to the refusal below.
  }
  throw new Beta9Error(
    "bad_request",
    "`after` is not a cursor this gateway gave; pass a list's `next` as it is",
  );
}

import {
  AI_GENERATED_HEADER,
  type AiActAudit,
  type AiActIncident,
  type AiActModel,
  type AiActReport,
  type AiActSection,
  type AiActUsage,
  BETA9_VERSION,
  UNKNOWN_LICENSE,
} from "@beta9/protocol";
import type { ModelProvenance, Store, Workspace } from "@beta9/store";

/*
 * The EU AI Act documentation pack of one workspace over a period, from recorded facts only: what the
 * machines said of the models they pulled (model_provenance), the usage rows, the audit log. What no
 * record says is shown as unknown or absent, never filled in.
 */

/** The audit chains' check, as the audit log gives it (gateway/src/audit/verify.ts). */
export interface AuditCheck {
  ok: boolean;
  chains: {
    chain: string;
    events: number;
    broken_at: number | null;
    last_checkpoint: { seq: number; hash: string } | null;
  }[];
}

/** A security event of the workspace in the period (refused credentials, forbidden attempts …). */
export interface SecurityEvent {
  action: string;
  outcome: string;
}

export interface AiActSources {
  store: Store;
  /** A machine's name, when the gateway knows it. */
  machineName(id: string): string | null;
  /** Absent until the audit log can be verified from here: the section says so. */
  verifyAudit?: (() => Promise<AuditCheck>) | undefined;
  securityEvents?:
    | ((workspaceId: string, since: number, until: number) => Promise<SecurityEvent[]>)
    | undefined;
  /** Who made each of the workspace's deployments (model → actor), from the audit log. */
  deployers?: ((workspaceId: string) => Promise<Map<string, string>>) | undefined;
}

export const SECTIONS: AiActSection[] = [
  {
    id: "inventory",
    title: "Model inventory and provenance",
    supports:
      "Art. 53(1)(a)-(b) and Annexes XI and XII (technical documentation and information for downstream providers: the model, its source, licence, architecture, size and a secure hash of its weights); Art. 26 (deployers' use of the system)",
  },
  {
    id: "usage",
    title: "Usage, energy and emissions",
    supports:
      "Annex XI section 2 (energy consumption, known or estimated); Art. 26(5) (deployers monitor the operation)",
  },
  {
    id: "incidents",
    title: "Incidents",
    supports:
      "Art. 26(5) (monitoring, informing of risks and incidents); Art. 12(2) (logs that identify risks)",
  },
  {
    id: "audit",
    title: "Record-keeping: the audit log",
    supports:
      "Art. 12 (automatic recording of events), Art. 19 and Art. 26(6) (logs kept at least six months, under the deployer's control)",
  },
  {
    id: "transparency",
    title: "Transparency",
    supports: "Art. 50(2) (outputs marked in a machine-readable format as artificially generated)",
  },
  {
    id: "not_covered",
    title: "What this pack does not cover",
    supports: "-",
  },
];

export const NOT_COVERED = [
  "This pack is documentation support built from what the platform recorded; it is not legal advice and does not by itself make anyone compliant.",
  "The training data, training compute and evaluation of third-party models come from their providers' own model cards and technical documentation, not from this platform; see each model's source.",
  "Licences are those the model file or its model card states; a model whose licence neither states is listed as unknown, and nobody has checked that its use complies with its licence.",
  "Risk classification, fundamental-rights impact assessments, human oversight measures and the instructions given to end users are the deployer's to write.",
  "Requests that never reached the gateway, and anything done on a machine outside the platform, are not recorded.",
];

/** Build the pack for `workspace` over [since, until). */
export async function aiActReport(
  src: AiActSources,
  workspace: Workspace,
  since: number,
  until: number,
  now = Date.now(),
): Promise<AiActReport> {
  const { store } = src;
  const [pulls, deployments, summary, footprints, statuses, machines] = await Promise.all([
    store.modelProvenance.list(workspace.id),
    store.deployments.list(workspace.id),
    store.usage.summarize({ workspaceId: workspace.id, since, until, groupBy: "model" }),
    store.usage.footprints({ workspaceId: workspace.id, since, until, groupBy: "model" }),
    store.usage.statusCounts({ workspaceId: workspace.id, since, until }),
    store.machines.list(),
  ]);
  const machineById = new Map(machines.map((m) => [m.id, m]));
  const deployers = src.deployers ? await src.deployers(workspace.id) : new Map<string, string>();

  // Pulls made by the end of the period: the models the workspace had on machines then.
  const models = inventory(
    pulls.filter((p) => p.first_pulled_at < until),
    (id) => ({
      name: src.machineName(id) ?? machineById.get(id)?.name ?? null,
      country: machineById.get(id)?.country ?? null,
    }),
    (name, createdAt) => {
      const d = deployments.find((x) => x.name === name && x.created_at === createdAt);
      return d ? new Date(d.created_at).toISOString() : null;
    },
    (name) => deployers.get(name) ?? null,
  );

  const measured = new Map(footprints.map((f) => [f.group, f.measured]));
  const usage: AiActUsage[] = summary.map((s) => {
    const of = statuses.filter((x) => x.model === s.group);
    const count = (test: (status: number) => boolean) =>
      of.filter((x) => test(x.status)).reduce((a, x) => a + x.count, 0);
    return {
      model: s.group,
      requests: s.requests,
      prompt_tokens: s.prompt_tokens,
      completion_tokens: s.completion_tokens,
      measured: measured.get(s.group) ?? 0,
      energy_wh: s.energy_wh ?? 0,
      co2e_g: s.co2e_g ?? 0,
      error_rate: rate(count(isError), s.requests),
      refusal_rate: rate(count(isRefusal), s.requests),
    };
  });

  const incidents: AiActIncident[] = [];
  const causes = new Map<string, number>();
  for (const s of statuses) {
    if (s.status < 400) continue;
    const cause = causeOf(s.status);
    causes.set(cause, (causes.get(cause) ?? 0) + s.count);
  }
  for (const [cause, count] of causes) incidents.push({ kind: "failed_requests", cause, count });
  if (src.securityEvents) {
    const events = new Map<string, number>();
    for (const e of await src.securityEvents(workspace.id, since, until)) {
      const cause = `${e.action} (${e.outcome})`;
      events.set(cause, (events.get(cause) ?? 0) + 1);
    }
    for (const [cause, count] of events) incidents.push({ kind: "security_event", cause, count });
  }

  return {
    workspace: workspace.name,
    from: new Date(since).toISOString(),
    to: new Date(until).toISOString(),
    generated_at: new Date(now).toISOString(),
    generator: `beta9 gateway ${BETA9_VERSION}`,
    sections: SECTIONS,
    models,
    usage,
    incidents,
    audit: { ...(await auditSection(src.verifyAudit)), content: contentSentence(workspace) },
    transparency: {
      header: AI_GENERATED_HEADER,
      value: "true",
      statement: `Every inference answer a machine gives through the gateway (OpenAI and Ollama APIs, whole or streamed) carries the HTTP response header "${AI_GENERATED_HEADER}: true", a machine-readable mark that its content is AI-generated. Clients that show the content to people should label it as AI-generated too.`,
    },
    not_covered: NOT_COVERED,
  };
}

function inventory(
  pulls: ModelProvenance[],
  machine: (id: string) => { name: string | null; country: string | null },
  deployedAt: (name: string, createdAt: number) => string | null,
  deployedBy: (name: string) => string | null,
): AiActModel[] {
  // One entry per model and bytes: the same name with other bytes is another model.
  const byModel = new Map<string, ModelProvenance[]>();
  for (const p of pulls) {
    const k = `${p.model}\u0000${p.sha256}`;
    byModel.set(k, [...(byModel.get(k) ?? []), p]);
  }
  return [...byModel.values()].map((rows) => {
    const p = rows[0]!;
    const machines = rows.map((r) => ({
      id: r.machine_id,
      ...machine(r.machine_id),
      first_pulled_at: new Date(r.first_pulled_at).toISOString(),
    }));
    return {
      name: p.model,
      sha256: p.sha256 === "" ? null : p.sha256,
      source: p.source,
      revision: revisionOf(p.source),
      license: p.license ?? UNKNOWN_LICENSE,
      license_source:
        p.license_source === "gguf" || p.license_source === "model_card" ? p.license_source : null,
      base_model: p.base_model,
      architecture: p.architecture,
      parameter_count: p.parameter_count === null ? null : Number(p.parameter_count),
      quantization: p.quantization,
      context_length: p.context_length,
      deployed_at: deployedAt(p.model, Number(p.deployment_created_at)),
      deployed_by: deployedBy(p.model),
      machines,
      countries: [...new Set(machines.map((m) => m.country).filter((c): c is string => c !== null))].sort(),
    };
  });
}

/** hf:ORG/REPO/FILE@REV → REV ("main" when none is named); ollama:NAME:TAG → TAG; others none. */
function revisionOf(source: string): string | null {
  if (source.startsWith("hf:")) return /@([^@]+)$/.exec(source)?.[1] ?? "main";
  if (source.startsWith("ollama:")) return /:([^:/]+)$/.exec(source.slice(7))?.[1] ?? "latest";
  return null;
}

/** What the workspace's inference events keep of prompts and answers, said for a reader of the pack. */
function contentSentence(w: Workspace): string {
  if (w.audit_content_since === null)
    return "Inference events keep metadata only (who, model and its sha256, machine, country, tokens, outcome, energy): no prompt or answer is kept (the workspace's choice, b9 workspace set --audit-content).";
  return `Since ${new Date(w.audit_content_since).toISOString()}, this workspace's inference events also keep each prompt and answer (up to 64 KiB each), by its own choice under the GDPR; they go with the events at the end of the audit retention.`;
}

async function auditSection(verify: AiActSources["verifyAudit"]): Promise<Omit<AiActAudit, "content">> {
  if (!verify) {
    return {
      verified: false,
      ok: null,
      note: "this gateway cannot verify the audit log (no audit chain is recorded here)",
      chains: [],
      checkpoints: [],
    };
  }
  try {
    const check = await verify();
    const broken = check.chains.filter((c) => c.broken_at !== null);
    return {
      verified: true,
      ok: check.ok,
      note: check.ok
        ? `every chain verified: ${check.chains.length} chain(s), ${check.chains.reduce((a, c) => a + c.events, 0)} event(s), each hash over its predecessor's, checkpoints signed`
        : `BROKEN: ${broken.map((c) => `chain ${c.chain} at sequence ${c.broken_at}`).join("; ")} (run \`b9 audit verify\`)`,
      chains: check.chains.map((c) => ({ chain: c.chain, events: c.events, first_broken_seq: c.broken_at })),
      checkpoints: check.chains.flatMap((c) =>
        c.last_checkpoint
          ? [{ chain: c.chain, seq: c.last_checkpoint.seq, hash: c.last_checkpoint.hash }]
          : [],
      ),
    };
  } catch (err) {
    return {
      verified: false,
      ok: null,
      note: `the audit log could not be verified: ${(err as Error).message}`,
      chains: [],
      checkpoints: [],
    };
  }
}

const rate = (n: number, of: number) => (of === 0 ? 0 : Math.round((n / of) * 10_000) / 10_000);
/** The gateway or a machine failed (502 includes answers cut off). */
const isError = (status: number) => status >= 500;
/** Refused before an answer: limits, policy, residency, bad input, unknown model (not a client that left). */
const isRefusal = (status: number) => status >= 400 && status < 500 && status !== 499;

function causeOf(status: number): string {
  const named: Record<number, string> = {
    400: "bad request (400)",
    401: "unauthenticated (401)",
    403: "refused by policy or residency (403)",
    404: "model not found (404)",
    413: "request too large (413)",
    429: "rate or token limit (429)",
    499: "client left before the end (499)",
    500: "gateway error (500)",
    502: "machine error or answer cut off (502)",
    503: "no machine available (503)",
    504: "machine too slow (504)",
  };
  return named[status] ?? `status ${status}`;
}

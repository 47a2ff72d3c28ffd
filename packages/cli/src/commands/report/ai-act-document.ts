import type { AiActReport } from "@beta9/sdk";
import { figure } from "../usage.ts";

/** The pack as a list of blocks, rendered as Markdown or HTML (one wording for both). */
export type Block =
  | { kind: "title" | "heading" | "subheading" | "text" | "supports"; text: string }
  | { kind: "table"; head: string[]; rows: string[][] }
  | { kind: "list"; items: string[] };

export function aiActDocument(r: AiActReport): Block[] {
  const out: Block[] = [
    { kind: "title", text: `EU AI Act documentation pack: workspace ${r.workspace}` },
    {
      kind: "text",
      text: `Period: ${r.from} to ${r.to}. Generated ${r.generated_at} by ${r.generator}, from recorded facts only.`,
    },
  ];
  const head = (id: string) => {
    const s = r.sections.find((x) => x.id === id) ?? { title: id, supports: "-" };
    out.push({ kind: "heading", text: s.title });
    if (s.supports !== "-") out.push({ kind: "supports", text: `Supports: ${s.supports}` });
  };

  head("inventory");
  if (r.models.length === 0)
    out.push({ kind: "text", text: "No model was deployed for this workspace by the end of the period." });
  for (const m of r.models) {
    const from =
      m.license_source === "gguf"
        ? " (GGUF metadata)"
        : m.license_source === "model_card"
          ? " (model card)"
          : "";
    const known = (v: string | number | null) => (v === null ? "unknown" : String(v));
    out.push({ kind: "subheading", text: m.name });
    out.push({
      kind: "table",
      head: ["Fact", "Value"],
      rows: [
        ["sha256", known(m.sha256)],
        ["Source", m.source],
        ["Revision", m.revision ?? "-"],
        ["Licence (SPDX)", `${m.license}${from}`],
        ["Base model", m.base_model ?? "-"],
        ["Architecture", known(m.architecture)],
        ["Parameters", known(m.parameter_count)],
        ["Quantisation", known(m.quantization)],
        ["Context length", known(m.context_length)],
        [
          "Deployed",
          `${m.deployed_at ?? "deployment since removed"}${m.deployed_by ? ` by ${m.deployed_by}` : ""}`,
        ],
        [
          "Machines",
          m.machines.map((x) => `${x.name ?? x.id} (${x.country ?? "country not set"})`).join(", "),
        ],
        ["Countries", m.countries.join(", ") || "not set"],
      ],
    });
  }

  head("usage");
  if (r.usage.length === 0) out.push({ kind: "text", text: "No inference requests in the period." });
  else
    out.push(
      {
        kind: "table",
        head: [
          "Model",
          "Requests",
          "Prompt tokens",
          "Completion tokens",
          "Measured",
          "Energy Wh",
          "gCO2e",
          "Errors",
          "Refusals",
        ],
        rows: r.usage.map((u) => [
          u.model,
          String(u.requests),
          String(u.prompt_tokens),
          String(u.completion_tokens),
          String(u.measured),
          figure(u.energy_wh),
          figure(u.co2e_g),
          pct(u.error_rate),
          pct(u.refusal_rate),
        ]),
      },
      {
        kind: "text",
        text: "Energy and gCO2e sum the answers whose energy was measured (the Measured column); the others are left out, not counted as zero.",
      },
    );

  head("incidents");
  if (r.incidents.length === 0)
    out.push({ kind: "text", text: "No failed requests or security events in the period." });
  else
    out.push({
      kind: "table",
      head: ["Kind", "Cause", "Count"],
      rows: r.incidents.map((i) => [i.kind.replace("_", " "), i.cause, String(i.count)]),
    });

  head("audit");
  out.push({ kind: "text", text: `Verification: ${r.audit.note}.` });
  out.push({ kind: "text", text: `Prompts and answers: ${r.audit.content}` });
  if (r.audit.checkpoints.length > 0)
    out.push({
      kind: "table",
      head: ["Chain", "Checkpoint sequence", "Hash"],
      rows: r.audit.checkpoints.map((c) => [c.chain, String(c.seq), c.hash]),
    });

  head("transparency");
  out.push({ kind: "text", text: r.transparency.statement });

  head("not_covered");
  out.push({ kind: "list", items: r.not_covered });
  return out;
}

export function pct(x: number): string {
  return `${Math.round(x * 10_000) / 100}%`;
}

import { createHash } from "node:crypto";
import { canonicalModelName, type MachineView, type ServedModelView } from "@beta9/protocol";
import type { WorkspaceModelList } from "../../auth/model-access.ts";
import type { MachineRegistry } from "../../machines/registry.ts";

/*
 * Ollama's model listings (/api/tags, /api/ps, /api/show) built from the caller's deployments and
 * what the machines report in their heartbeats: which models each serves, with the engine, memory and
 * context size.
 */

/**
 * What a machine says about a model it serves. Heartbeats carry ServedModelView; the content facts an
 * agent records on pull (sha256, architecture, parameter count, quantization) are used where a
 * heartbeat carries them too, and are otherwise unknown here.
 */
type ModelFacts = ServedModelView & {
  sha256?: string | null;
  architecture?: string | null;
  parameter_count?: number | null;
  quantization?: string | null;
};

export interface ServedModel {
  name: string;
  /** The machines serving it, each with what it reports about the model (none: scaled to zero). */
  machines: { machine: MachineView; facts: ModelFacts }[];
  /** The caller's deployment of it, when there is one. */
  deployment?: { sha256: string | null; createdAt: number } | undefined;
}

/**
 * The models a workspace may call (see auth/model-access.ts), by name: its deployments, served now or
 * scaled to zero, and the models served without any deployment.
 */
export function listedModels(registry: MachineRegistry, visible: WorkspaceModelList): ServedModel[] {
  // Also the machines held by peer replicas: requests for their models are forwarded there.
  const served = registry.servedModels({ peers: true });
  const machinesOf = (name: string): ServedModel["machines"] => {
    const machines: ServedModel["machines"] = [];
    for (const id of served.get(name) ?? []) {
      const machine = registry.view(id);
      const facts = machine?.inference?.models.find((m) => m.name === name && m.state === "ready");
      if (machine && facts) machines.push({ machine, facts });
    }
    return machines;
  };
  const out: ServedModel[] = visible.deployed.map((d) => ({
    name: d.name,
    machines: machinesOf(d.name),
    deployment: { sha256: d.sha256, createdAt: d.created_at },
  }));
  for (const name of visible.shared) {
    const machines = machinesOf(name);
    if (machines.length > 0 && !out.some((m) => m.name === name)) out.push({ name, machines });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** The names a client's model name may mean, itself first: with ":latest" added or taken off. */
export function nameVariants(asked: string): string[] {
  // Names are case-insensitive: one canonical form everywhere.
  const name = canonicalModelName(asked);
  if (name.endsWith(":latest")) return [name, name.slice(0, -":latest".length)];
  return name.includes(":") ? [name] : [name, `${name}:latest`];
}

const pick = <T>(m: ServedModel, f: (x: ModelFacts) => T | null | undefined): T | undefined => {
  for (const { facts } of m.machines) {
    const v = f(facts);
    if (v !== null && v !== undefined) return v;
  }
  return undefined;
};

/** One copy's size: the most memory a serving machine reports for it (0 when none says). */
export function modelSize(m: ServedModel): number {
  return Math.max(0, ...m.machines.map(({ facts }) => facts.memory_bytes ?? 0));
}

/** The content digest when known, else a stable stand-in derived from the name. */
export function modelDigest(m: ServedModel): string {
  return (
    pick(m, (f) => f.sha256) ??
    m.deployment?.sha256 ??
    createHash("sha256").update(`beta9-model:${m.name}`).digest("hex")
  );
}

const FORMATS: Record<string, string> = {
  builtin: "gguf",
  llamacpp: "gguf",
  ollama: "gguf",
  vllm: "safetensors",
  sglang: "safetensors",
  mlx: "mlx",
};

/** Ollama's "134.52M" / "8.0B". */
export function parameterSize(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(2)}K`;
  return String(n);
}

export function modelDetails(m: ServedModel) {
  const family = pick(m, (f) => f.architecture) ?? "";
  const params = pick(m, (f) => f.parameter_count);
  return {
    parent_model: "",
    format: FORMATS[pick(m, (f) => f.engine) ?? ""] ?? "gguf",
    family,
    families: family ? [family] : null,
    parameter_size: params ? parameterSize(params) : "",
    quantization_level: pick(m, (f) => f.quantization) ?? "",
  };
}

/** When the model appeared: its deployment, else the earliest join of the machines serving it. */
function modifiedAt(m: ServedModel): string {
  if (m.deployment) return new Date(m.deployment.createdAt).toISOString();
  return m.machines.map(({ machine }) => machine.joined_at).sort()[0] ?? new Date(0).toISOString();
}

/** GET /api/tags entry. */
export function tagEntry(m: ServedModel) {
  return {
    name: m.name,
    model: m.name,
    modified_at: modifiedAt(m),
    size: modelSize(m),
    digest: modelDigest(m),
    details: modelDetails(m),
  };
}

/** Models stay loaded until someone stops them, so a loaded model does not expire. */
const NEVER = "9999-12-31T23:59:59Z";

/**
 * GET /api/ps entry: one per model, with the machines serving it (a Beta9 addition). size_vram is the
 * size when a serving machine has a GPU (the engines offload what fits), else 0.
 */
export function psEntry(m: ServedModel) {
  const size = modelSize(m);
  const gpu = m.machines.some(({ machine }) => machine.hardware.gpus.length > 0);
  return {
    name: m.name,
    model: m.name,
    size,
    digest: modelDigest(m),
    details: modelDetails(m),
    expires_at: NEVER,
    size_vram: gpu ? size : 0,
    context_length: pick(m, (f) => f.context_size) ?? 0,
    machines: m.machines.map(({ machine, facts }) => ({
      id: machine.id,
      name: machine.name,
      pool: machine.pool,
      engine: facts.engine,
      memory_bytes: facts.memory_bytes,
      context_size: facts.context_size,
    })),
  };
}

/** POST /api/show answer. */
export function showAnswer(m: ServedModel) {
  const details = modelDetails(m);
  const context = pick(m, (f) => f.context_size);
  const params = pick(m, (f) => f.parameter_count);
  const info: Record<string, unknown> = {};
  if (details.family) info["general.architecture"] = details.family;
  if (params) info["general.parameter_count"] = params;
  if (context) {
    // Clients read "<architecture>.context_length"; the served context is what a request can use.
    info[`${details.family || "beta9"}.context_length`] = context;
  }
  info["beta9.engine"] = pick(m, (f) => f.engine) ?? "";
  info["beta9.machines"] = m.machines.length;
  return {
    license: "",
    modelfile:
      m.machines.length === 0
        ? "# Deployed with Beta9 and scaled to zero: the first request loads it on a machine that fits.\n"
        : `# Served by Beta9 on ${m.machines.length} machine${m.machines.length === 1 ? "" : "s"}; the machine's engine applies the model's own template.\n`,
    parameters: context ? `num_ctx                        ${context}` : "",
    template: "",
    details,
    model_info: info,
    capabilities: ["completion"],
    modified_at: modifiedAt(m),
  };
}

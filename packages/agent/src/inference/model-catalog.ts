import { Beta9Error, type StoredModelView } from "@beta9/protocol";
import type { ModelSpec } from "../engines/engine.ts";
import type { OllamaEngine } from "../engines/ollama.ts";
import type { ModelPuller, PullerOptions } from "../models/puller.ts";
import type { ModelRecord, ModelStore } from "../models/store.ts";
import type { ModelCatalog } from "./manager.ts";

/** The model store as the inference manager and the control API use it. */
export class StoreCatalog implements ModelCatalog, ModelPuller {
  readonly #store: ModelStore;
  readonly #ollama: OllamaEngine | undefined;
  constructor(store: ModelStore, ollama?: OllamaEngine) {
    this.#store = store;
    this.#ollama = ollama;
  }

  resolve(name: string, opts: { contextSize?: number | undefined } = {}): Promise<ModelSpec> {
    return this.#store.resolve(name, opts.contextSize ? { contextSize: opts.contextSize } : {});
  }

  async pull(name: string, source: string | undefined, opts: PullerOptions): Promise<StoredModelView> {
    if (source === undefined) {
      await this.#store.checkOwner(name, opts.owner);
      const existing = await this.#store.get(name);
      if (existing) return view(existing);
      throw new Beta9Error(
        "model_not_found",
        `no model named ${name} on this machine; give a source: a path, http(s)://…, hf:ORG/REPO/FILE.gguf or ollama:NAME:TAG`,
      );
    }
    const before = await this.#store.get(name).catch(() => undefined);
    const res = await this.#store.pull(name, source, {
      // The route sends the final line itself, with the record.
      onProgress: (p) => {
        if (p.status !== "success") opts.onProgress(p);
      },
      signal: opts.signal,
      expectedSha256: opts.expectedSha256,
      owner: opts.owner,
      sourceTrusted: opts.sourceTrusted,
    });
    if (res.status === "ollama") {
      // Ollama keeps its own store: the record maps our name to it, Ollama pulls the weights.
      try {
        if (!this.#ollama)
          throw new Beta9Error("engine_not_installed", "ollama: sources need the Ollama engine");
        await this.#ollama.pull(res.ollamaName, {
          onProgress: (p) =>
            opts.onProgress({ status: p.status, digest: p.digest, completed: p.completed, total: p.total }),
          signal: opts.signal,
        });
      } catch (err) {
        // A model Ollama never got is no model: the record this pull wrote goes with the failure.
        if (!before) await this.#store.remove(name).catch(() => {});
        throw err;
      }
    }
    return view(res.record);
  }

  checkOwner(name: string, owner: string | undefined): Promise<void> {
    return this.#store.checkOwner(name, owner);
  }

  async list(): Promise<StoredModelView[]> {
    return (await this.#store.list()).map(view);
  }
}

export function view(r: ModelRecord): StoredModelView {
  return {
    name: r.name,
    sha256: r.sha256,
    size: r.size,
    source: r.source,
    format: r.format,
    license: r.license,
    license_source: r.license_source ?? null,
    base_model: r.base_model ?? null,
    architecture: r.architecture,
    parameter_count: r.parameter_count,
    quantization: r.quantization,
    context_length: r.context_length,
  };
}

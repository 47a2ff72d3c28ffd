import { Beta9Error, type Hardware, type PoolDirOffer, type StoredModelView } from "@beta9/protocol";
import type { EngineName, ModelFormat, ModelSpec } from "../engines/engine.ts";
import type { MlxEngine } from "../engines/mlx.ts";
import type { OllamaEngine } from "../engines/ollama.ts";
import {
  ggufToSafetensors,
  type HfModelDir,
  listConvertedDirs,
  safetensorsDir,
} from "../models/convert/gguf-to-hf.ts";
import { parseQuantizationType, quantizeModel } from "../models/convert/quantize.ts";
import { ggufToMlx, mlxDir } from "../models/convert/to-mlx.ts";
import { pullHfRepo } from "../models/hf-repo.ts";
import { ModelError } from "../models/model-error.ts";
import { fetchPoolCopy, fetchPoolDir, type PoolAccess, type PoolOffer } from "../models/pool-copy.ts";
import type { ModelPuller, PullerOptions } from "../models/puller.ts";
import { joinRun, type SharedRun } from "../models/shared-run.ts";
import { type HfRepoSource, parseHfRepoSource, validateModelName } from "../models/sources.ts";
import type { GgufModelRecord, ModelRecord, ModelStore, PullResult } from "../models/store.ts";
import type { ModelCatalog } from "./manager.ts";

/** The model store as the inference manager and the control API use it. */
export class StoreCatalog implements ModelCatalog, ModelPuller {
  readonly #store: ModelStore;
  readonly #ollama: OllamaEngine | undefined;
  readonly #mlx: MlxEngine | undefined;
  readonly #capacityBytes: number | undefined;
  readonly #pool: PoolAccess | undefined;
  /** Pulls under way, by everything that makes two of them the same pull. */
  readonly #pulls = new Map<string, SharedRun<PullResult>>();
  /**
   * `capacityBytes`: all the memory the machine has for weights (capacityOf), against which a
   * repository's converted size is checked before its weights are fetched.
   */
  constructor(
    store: ModelStore,
    opts: {
      ollama?: OllamaEngine | undefined;
      mlx?: MlxEngine | undefined;
      capacityBytes?: number | undefined;
      /** The gateway, for a pull that offers another machine's conversion (pool-copy.ts). */
      pool?: PoolAccess | undefined;
    } = {},
  ) {
    this.#store = store;
    this.#ollama = opts.ollama;
    this.#mlx = opts.mlx;
    this.#capacityBytes = opts.capacityBytes;
    this.#pool = opts.pool;
  }

  resolve(name: string, opts: { contextSize?: number | undefined } = {}): Promise<ModelSpec> {
    return this.#store.resolve(name, opts.contextSize ? { contextSize: opts.contextSize } : {});
  }

  /**
   * A stored GGUF in the format `engine` takes: a float16 safetensors repository for vLLM or SGLang
   * (`ggufToSafetensors`), an MLX model for mlx_lm.server (`ggufToMlx`, through that repository). Made
   * once per source and kept under the store; every later start reuses it. Another machine's
   * conversion offered with the start (`opts.pool`) is copied instead of converting, and a copy kept
   * here is reused like a conversion of this machine's own; `opts.note` hears why an offer was not
   * taken. Its weights' size is what it needs in memory before the engine's cache.
   */
  async convertFor(
    spec: ModelSpec,
    to: ModelFormat,
    engine: EngineName,
    opts: { pool?: PoolDirOffer | undefined; note?: ((message: string) => void) | undefined } = {},
  ): Promise<ModelSpec> {
    if (spec.format !== "gguf" || (to !== "safetensors" && to !== "mlx"))
      throw new ModelError(
        "conversion_failed",
        `${spec.name} is ${spec.format}; only a GGUF converts (to safetensors or MLX) on its way to ${engine}`,
      );
    const record = await this.#store.get(spec.name);
    const owner = record?.owner ?? undefined;
    try {
      const made =
        (record?.format === "gguf"
          ? await this.#copied(spec.name, to, record.sha256, owner ?? null, opts)
          : undefined) ??
        (to === "mlx"
          ? await this.#toMlx(spec.name, owner)
          : await ggufToSafetensors(this.#store, { from: spec.name, owner }));
      const weights = made.files
        .filter((f) => f.name.endsWith(".safetensors"))
        .reduce((sum, f) => sum + f.size, 0);
      return {
        name: spec.name,
        format: to,
        path: made.dir,
        contextSize: spec.contextSize,
        memoryBytes: weights,
        convertedFrom: "gguf",
        conversion: { sha256: made.sha256, size: weights, converted_from: made.converted_from },
      };
    } catch (err) {
      if (!(err instanceof Beta9Error)) throw err;
      // Said for the start that needed it: which engine, and why it took a conversion.
      throw new ModelError(
        err.code as ModelError["code"],
        `${spec.name} is GGUF and no engine here serves GGUF, so it was to be converted to ${to === "mlx" ? "MLX" : to} for ${engine}: ${err.message}`,
      );
    }
  }

  /**
   * Another machine's conversion of this GGUF into `to`: the one offered, copied through the gateway,
   * or a copy kept here before. Undefined when there is none or the copy failed (said in `note`).
   */
  async #copied(
    name: string,
    to: "safetensors" | "mlx",
    sha256: string,
    owner: string | null,
    opts: { pool?: PoolDirOffer | undefined; note?: ((message: string) => void) | undefined },
  ): Promise<HfModelDir | undefined> {
    const root = to === "mlx" ? mlxDir(this.#store) : safetensorsDir(this.#store);
    const offer = opts.pool?.format === to ? opts.pool : undefined;
    if (offer && this.#pool) {
      try {
        return await fetchPoolDir(this.#store, this.#pool, { name, root, offer, owner });
      } catch (err) {
        opts.note?.(
          `could not copy ${name} as ${to} from ${offer.machine_name} (${(err as Error).message}); converting it here`,
        );
      }
    }
    return (await listConvertedDirs(this.#store, root)).find(
      (d) =>
        d.owner === owner &&
        d.converted_from.sha256 === sha256 &&
        d.converted_from.converted_on !== undefined,
    );
  }

  async #toMlx(name: string, owner: string | undefined): Promise<HfModelDir> {
    const tool = await this.#mlx?.converter();
    if (!tool)
      throw new ModelError(
        "converter_unavailable",
        "mlx_lm.convert was not found beside mlx_lm.server; pip install mlx-lm (it brings both)",
      );
    return ggufToMlx(this.#store, { from: name, owner, tool });
  }

  async pull(name: string, source: string | undefined, opts: PullerOptions): Promise<StoredModelView> {
    if (opts.pool && source !== undefined) {
      const copy = await this.#fromPool(name, source, opts.pool, opts);
      if (copy) return view(copy);
    }
    const repo = source === undefined ? undefined : parseHfRepoSource(source);
    if (repo) return view(await this.#pullRepo(name, repo, opts));
    if (opts.quantize !== undefined) return this.#pullQuantized(name, source, opts.quantize, opts);
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
    // The same pull asked twice at once (a cold start beside `b9 model pull`) is one pull both follow;
    // the store itself refuses a second pull of a source under way.
    const same = [
      validateModelName(name),
      source,
      opts.owner ?? "",
      opts.expectedSha256 ?? "",
      String(opts.sourceTrusted === true),
    ];
    const res = await joinRun(
      this.#pulls,
      same.join("\u0000"),
      {
        signal: opts.signal,
        // The route sends the final line itself, with the record.
        onProgress: (p) => {
          if (p.status !== "success") opts.onProgress(p);
        },
      },
      (signal, onProgress) =>
        this.#store.pull(name, source, {
          onProgress,
          signal,
          expectedSha256: opts.expectedSha256,
          owner: opts.owner,
          sourceTrusted: opts.sourceTrusted,
        }),
    );
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

  /**
   * The deployment's conversion, made once in the pool: what this machine has of it already, else its
   * bytes from the machine that made it, through the gateway. Undefined when that fails for any reason
   * but a cancel (the holder left, its bytes do not hash to what it claimed): the caller then pulls the
   * source and converts here, as without an offer; the reason is in the progress.
   */
  async #fromPool(
    name: string,
    source: string,
    offer: PoolOffer,
    opts: PullerOptions,
  ): Promise<GgufModelRecord | undefined> {
    const canonical = validateModelName(name);
    await this.#store.checkOwner(canonical, opts.owner);
    const here = await this.#store.get(canonical);
    if (here?.format === "gguf" && here.sha256 === offer.sha256) {
      opts.onProgress({ status: `${canonical} is here already, as converted in the pool` });
      return here;
    }
    if (!this.#pool) return undefined;
    // A deployment pinned to its source's bytes takes only a conversion of those bytes.
    const pinned = opts.expectedSha256?.toLowerCase();
    if (pinned !== undefined && offer.converted_from.sha256 !== pinned) {
      opts.onProgress({
        status: `${offer.machine_name}'s conversion of ${canonical} was made from other bytes than the source's sha256; converting it here`,
      });
      return undefined;
    }
    try {
      return await fetchPoolCopy(this.#store, this.#pool, {
        name: canonical,
        source,
        offer,
        owner: opts.owner,
        signal: opts.signal,
        onProgress: opts.onProgress,
      });
    } catch (err) {
      if (opts.signal.aborted) throw err;
      opts.onProgress({
        status: `could not fetch ${canonical} from ${offer.machine_name} (${(err as Error).message}); converting it here`,
      });
      return undefined;
    }
  }

  /**
   * Pull `source` under `name`'s source name, then convert it to `type` as `name`: once per source
   * sha256 and type (quantizeModel reuses and shares conversions); a `name` already converted from
   * the source stored under that name, for that source, is answered without fetching or converting.
   */
  async #pullQuantized(
    name: string,
    source: string | undefined,
    type: string,
    opts: PullerOptions,
  ): Promise<StoredModelView> {
    const target = parseQuantizationType(type, name);
    const from = sourceNameOf(validateModelName(name));
    if (source === undefined || source.startsWith("ollama:"))
      throw new ModelError(
        "conversion_failed",
        source === undefined
          ? `quantizing ${name} to ${target} needs the GGUF to convert: give its source (http(s)://…, hf:ORG/REPO/FILE.gguf or a path)`
          : `cannot quantize ${name} to ${target}: ollama: sources are Ollama's own models; give a GGUF source (http(s)://…, hf:ORG/REPO/FILE.gguf)`,
      );
    await this.#store.checkOwner(name, opts.owner);
    const [done, origin] = await Promise.all([this.#store.get(name), this.#store.get(from)]);
    if (
      done?.format === "gguf" &&
      origin?.format === "gguf" &&
      origin.source === source &&
      done.converted_from?.sha256 === origin.sha256 &&
      done.converted_from.target === target &&
      (opts.expectedSha256 === undefined || opts.expectedSha256.toLowerCase() === origin.sha256)
    ) {
      opts.onProgress({ status: `${name} is ${from} quantized to ${target} already` });
      return view(done);
    }
    // A copy of another machine's conversion has no source stored beside it: its record names both.
    if (
      done?.format === "gguf" &&
      !origin &&
      done.source === source &&
      done.converted_from?.converted_on !== undefined &&
      done.converted_from.target === target &&
      (opts.expectedSha256 === undefined || opts.expectedSha256.toLowerCase() === done.converted_from.sha256)
    ) {
      opts.onProgress({
        status: `${name} is here already, copied from ${done.converted_from.converted_on}'s conversion`,
      });
      return view(done);
    }
    // The source itself: never the pool's copy of the conversion, which is what `name` would have been.
    await this.pull(from, source, { ...opts, quantize: undefined, pool: undefined });
    const converting = `quantizing ${name} to ${target}`;
    const record = await quantizeModel(this.#store, {
      from,
      name,
      type: target,
      owner: opts.owner,
      signal: opts.signal,
      onProgress: (p) =>
        opts.onProgress(
          p.status === "quantizing"
            ? { status: converting, completed: p.completed, total: p.total, unit: "tensors" }
            : { status: p.status },
        ),
    });
    return view(record);
  }

  /** A safetensors repository (hf:ORG/REPO[@REV]): fetched and converted to GGUF once (models/hf-repo.ts). */
  async #pullRepo(name: string, source: HfRepoSource, opts: PullerOptions): Promise<GgufModelRecord> {
    const canonical = validateModelName(name);
    await this.#store.checkOwner(canonical, opts.owner);
    return pullHfRepo(this.#store, {
      name: canonical,
      sourceName: sourceNameOf(canonical),
      source,
      owner: opts.owner,
      quantize: opts.quantize,
      expectedSha256: opts.expectedSha256,
      restricted: opts.owner !== undefined && opts.sourceTrusted !== true,
      signal: opts.signal,
      onProgress: opts.onProgress,
      capacityBytes: this.#capacityBytes,
    });
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
    ...(r.format === "gguf" && r.converted_from
      ? {
          converted_from: {
            name: r.converted_from.name,
            sha256: r.converted_from.sha256,
            format: r.converted_from.format,
            quantization: r.converted_from.quantization,
            target: r.converted_from.target,
            converter: {
              tool: r.converted_from.converter.tool,
              version: r.converted_from.converter.version,
              args: r.converted_from.converter.args,
            },
            ...(r.converted_from.converted_on ? { converted_on: r.converted_from.converted_on } : {}),
          },
        }
      : {}),
  };
}

/** Where a converted model's source is stored: "smol" → "smol.source", "llama3.2:1b" → "llama3.2.source:1b". */
export function sourceNameOf(name: string): string {
  const [base, tag] = name.split(":");
  return tag === undefined ? `${base}.source` : `${base}.source:${tag}`;
}

/** All the memory a machine has for a model's weights: its RAM and its GPUs' own memory together. */
export function capacityOf(hardware: Hardware): number {
  return hardware.gpus.reduce(
    (sum, g) => sum + (g.unified_memory ? 0 : (g.memory_total_bytes ?? 0)),
    hardware.memory_total_bytes,
  );
}

import { randomUUID } from "node:crypto";
import type { Logger } from "@beta9/http";
import { NO_FOOTPRINT, type UsageRow } from "@beta9/store";
import { type CapturedContent, ContentCapture } from "../audit/content.ts";
import type { Caller } from "../auth/api-keys.ts";
import { answerFootprint, type CarbonSource, type Footprint } from "../carbon/footprint.ts";
import type { InferenceMetrics } from "../http/metrics.ts";
import type { Admission, KeyLimits, Reservation, WorkspaceLimits } from "../limits/key-limits.ts";
import type { InferenceAudit } from "./inference-audit.ts";
import type { UsageRecorder } from "./usage-recorder.ts";

/** Model names are the client's text: kept, but not without bound. */
const MAX_MODEL_CHARS = 256;

/** Statuses recorded for answers that did not end as the HTTP status says. */
export const CUT_OFF = 502;
export const CLIENT_LEFT = 499;

/**
 * Limits and usage for inference requests: `admit` before routing (per-key requests and tokens per
 * minute), `start` a meter that records the request's usage row once it is finished and charges its
 * tokens to the key.
 */
export class Metering {
  readonly #recorder: UsageRecorder;
  readonly #limits: KeyLimits;
  readonly #metrics: MeteredMetrics | undefined;
  readonly #keyConcurrency: number | null;
  readonly #carbon: CarbonSource | undefined;
  readonly #log: Logger | undefined;
  readonly #audit: InferenceAudit | undefined;

  /**
   * `metrics`: where each finished request is counted for Prometheus too (one place for the OpenAI
   * and Ollama routes alike), with `servedNow` saying whether an unconfirmed name may be a label.
   * `keyConcurrency`: how many requests one key may have under way at once (null: no bound).
   */
  constructor(
    recorder: UsageRecorder,
    limits: KeyLimits,
    metrics?: MeteredMetrics,
    opts: {
      keyConcurrency?: number | null;
      carbon?: CarbonSource | undefined;
      log?: Logger | undefined;
      /** Each finished request's audit event (off: no events, the bench's baseline). */
      audit?: InferenceAudit | undefined;
    } = {},
  ) {
    this.#recorder = recorder;
    this.#limits = limits;
    this.#metrics = metrics;
    this.#keyConcurrency = opts.keyConcurrency ?? null;
    this.#carbon = opts.carbon;
    this.#log = opts.log;
    this.#audit = opts.audit;
  }

  /**
   * Admit `meter`'s request under its key's limits, reserving what it may use: its prompt's
   * estimate (charged from the start, so a request abandoned before the engine reports its usage
   * still pays for its prompt) and the most it may generate, until its answer ends.
   */
  admit(caller: Caller, meter: RequestMeter, need: TokenNeed = { prompt: 0, completion: 0 }): Admission {
    const admission = this.#limits.admit(caller.keyId, caller.limits, workspaceOf(caller), {
      tokens: need.prompt + need.completion,
      concurrency: this.#keyConcurrency,
    });
    if (admission.ok) meter.reserve(admission.reservation, need.prompt);
    return admission;
  }

  /** `requestId`: the request's id (http/request-id.ts), kept on its usage row. */
  start(caller: Caller, model: string, requestId: string | null = null): RequestMeter {
    return new RequestMeter(
      caller,
      model,
      (row, tokens, facts, reservation) => {
        this.#recorder.record(row);
        this.#audit?.request(row, facts);
        this.#log?.info(
          {
            request_id: row.request_id,
            model: row.model,
            machine_id: row.machine_id,
            status: row.status,
            latency_ms: row.latency_ms,
            prompt_tokens: row.prompt_tokens,
            completion_tokens: row.completion_tokens,
          },
          "inference request",
        );
        if (reservation) reservation.settle(tokens);
        else this.#limits.charge(caller.keyId, tokens, caller.limits, workspaceOf(caller));
        if (this.#metrics) record(this.#metrics, row, facts);
        // Written now, with the rows of whatever else finishes in this turn (one INSERT for them all):
        // an answer held until then is never seen whole by a client whose usage a crash could lose.
        return this.#recorder.flushSoon();
      },
      this.#carbon,
      requestId,
    );
  }

  /** The usage rows of finished requests, written now (a usage query sees its caller's requests). */
  flush(): Promise<void> {
    return this.#recorder.flush();
  }
}

/** A row with every column (its footprint's null when nothing was measured). */
type Row = UsageRow;

/** What a meter knows beyond its usage row. */
export interface MeterFacts {
  /** The route found the model (deployed for the caller, or served): its name may label metrics. */
  known: boolean;
  /** The machine streamed the answer, so its tokens came between the first byte and the end. */
  streamed: boolean;
  /** The model's sha256 when known (its audit event names it). */
  sha256: string | null;
  /** The prompt and the answer, when the caller's workspace keeps them in its audit events. */
  content?: CapturedContent | undefined;
}

/** What a request may use, estimated at admission. */
export interface TokenNeed {
  /** The prompt's tokens, estimated from the request's text. */
  prompt: number;
  /** The most it may generate (its max_tokens, or a default). */
  completion: number;
}

/** Records the finished request; resolves once its row is in the store (or the write failed). */
type Done = (
  row: Row,
  tokens: number,
  facts: MeterFacts,
  reservation: Reservation | undefined,
) => Promise<void> | void;

export interface MeteredMetrics {
  inference: InferenceMetrics;
  /** Whether a machine serves this name now (names nobody serves are not labels). */
  servedNow: (model: string) => boolean;
}

function record(m: MeteredMetrics, row: Row, facts: MeterFacts): void {
  // Client-chosen names must not grow the metrics without bound: only known models are labels.
  const known = facts.known || row.machine_id !== null || m.servedNow(row.model);
  const seconds = row.latency_ms / 1000;
  const firstByte = row.ttfb_ms === null ? null : row.ttfb_ms / 1000;
  m.inference.record({
    model: known ? row.model : "unknown",
    status: row.status,
    seconds,
    firstByteSeconds: firstByte,
    reachedMachine: row.machine_id !== null,
    promptTokens: row.prompt_tokens,
    completionTokens: row.completion_tokens,
    // A streamed answer's rate counts the tokens after the first, over the time after it (the
    // prompt's processing and any cold start left out); a whole answer's, all of it over all its time.
    generation:
      facts.streamed && firstByte !== null
        ? { tokens: row.completion_tokens - 1, seconds: seconds - firstByte }
        : { tokens: row.completion_tokens, seconds },
    footprint:
      typeof row.energy_wh === "number" && row.machine_id !== null
        ? {
            machine: row.machine_id,
            method: String(row.energy_method),
            wh: row.energy_wh,
            co2eG: typeof row.co2e_g === "number" ? row.co2e_g : null,
          }
        : undefined,
  });
}

/** One request's usage, from its arrival to its end. */
export class RequestMeter {
  readonly startedAtMs = Date.now();
  readonly #t0 = performance.now();
  readonly #caller: Caller;
  readonly #model: string;
  readonly #requestId: string | null;
  readonly #done: Done;
  #machineId: string | null = null;
  #ttfbMs: number | null = null;
  #prompt = 0;
  #completion = 0;
  #finished = false;
  #reservation: Reservation | undefined;
  #sent = false;
  #written: Promise<void> | void = undefined;
  #footprint: Footprint | undefined;
  readonly #facts: MeterFacts = { known: false, streamed: false, sha256: null };
  #capture: ContentCapture | undefined;

  readonly #carbon: CarbonSource | undefined;

  constructor(
    caller: Caller,
    model: string,
    done: Done,
    carbon?: CarbonSource,
    requestId: string | null = null,
  ) {
    this.#caller = caller;
    this.#requestId = requestId;
    this.#carbon = carbon;
    this.#model = model.slice(0, MAX_MODEL_CHARS);
    this.#done = done;
  }

  get finished(): boolean {
    return this.#finished;
  }

  /** Milliseconds since the request arrived. */
  elapsedMs(): number {
    return performance.now() - this.#t0;
  }

  machine(id: string): void {
    this.#machineId = id;
    this.#sent = true;
  }

  /** The request went to a machine (its prompt is processed from now on, answered or not). */
  sent(): void {
    this.#sent = true;
  }

  /** The model is one the caller may use (a deployment of theirs, or served): a metrics label. */
  known(): void {
    this.#facts.known = true;
  }

  /** The model's sha256, when the deployment pins it or its machine's pull said it. */
  modelSha256(sha256: string | null): void {
    this.#facts.sha256 = sha256;
  }

  /** Keep the prompt (`body`, as sent to the machine) and the answer for the audit event (the workspace chose so). */
  captureContent(body: unknown): void {
    this.#capture = new ContentCapture(body);
  }

  /** Where the answer's text goes while it is kept (undefined: it is not). */
  get capture(): ContentCapture | undefined {
    return this.#capture;
  }

  /** The machine streams this answer (tokens per second then count from the first token). */
  streamed(): void {
    this.#facts.streamed = true;
  }

  /** The first byte of the machine's answer (the first token, when streamed); later calls are ignored. */
  firstByte(): void {
    this.#ttfbMs ??= Math.round(this.elapsedMs());
  }

  /**
   * The answer's footprint from the energy the machine sent in its trailers (carbon/footprint.ts),
   * kept for its usage row; undefined when it sent none (its row's footprint is then null).
   */
  async measure(
    trailers: Record<string, string | string[] | undefined> | undefined,
  ): Promise<Footprint | undefined> {
    if (!this.#carbon || this.#machineId === null || this.#finished) return undefined;
    this.#footprint = await answerFootprint(
      trailers,
      this.#carbon.machine(this.#machineId),
      this.#carbon.intensity,
    );
    return this.#footprint;
  }

  /** The machine that answered (null before one did). */
  get machineId(): string | null {
    return this.#machineId;
  }

  /**
   * The request was admitted holding `reservation`; until the engine says otherwise its prompt is
   * `promptEstimate` tokens (what a request abandoned before its usage arrives is metered with).
   */
  reserve(reservation: Reservation, promptEstimate: number): void {
    this.#reservation = reservation;
    this.#prompt = Math.max(0, Math.round(promptEstimate));
  }

  /** The answer's token counts, as its `usage` says (or an estimate when it says none). */
  tokens(prompt: number | undefined, completion: number | undefined): void {
    if (typeof prompt === "number" && Number.isFinite(prompt)) this.#prompt = Math.max(0, Math.round(prompt));
    if (typeof completion === "number" && Number.isFinite(completion))
      this.#completion = Math.max(0, Math.round(completion));
  }

  /**
   * Resolves once the finished request's usage row is written (at once before finish()): relays hold
   * the answer's last bytes until then, so a gateway killed after the client saw its answer whole
   * has recorded it.
   */
  written(): Promise<void> {
    return this.#written ?? Promise.resolve();
  }

  /** Record the request with the status its client got; only the first call counts. */
  finish(status: number): void {
    if (this.#finished) return;
    this.#finished = true;
    // A request no machine saw used nothing, whatever its prompt's estimate.
    if (!this.#sent) this.#prompt = this.#completion = 0;
    if (this.#capture) this.#facts.content = this.#capture.content;
    this.#written = this.#done(
      {
        id: randomUUID(),
        key_id: this.#caller.keyId,
        workspace_id: this.#caller.workspaceId,
        model: this.#model,
        machine_id: this.#machineId,
        status,
        prompt_tokens: this.#prompt,
        completion_tokens: this.#completion,
        latency_ms: Math.round(this.elapsedMs()),
        ttfb_ms: this.#ttfbMs,
        started_at: this.startedAtMs,
        request_id: this.#requestId,
        // Nulls when nothing was measured: unknown, never zero.
        ...(this.#footprint ?? NO_FOOTPRINT),
      },
      this.#prompt + this.#completion,
      this.#facts,
      this.#reservation,
    );
  }
}

/** The caller's workspace limits, when it has any. */
function workspaceOf(caller: Caller): WorkspaceLimits | undefined {
  const w = caller.workspaceLimits;
  return w.rpm === null && w.tpm === null ? undefined : { id: caller.workspaceId, limits: w };
}

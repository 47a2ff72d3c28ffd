import { randomUUID } from "node:crypto";
import type { Caller } from "../auth/api-keys.ts";
import type { Admission, KeyLimits } from "../limits/key-limits.ts";
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

  constructor(recorder: UsageRecorder, limits: KeyLimits) {
    this.#recorder = recorder;
    this.#limits = limits;
  }

  admit(caller: Caller): Admission {
    return this.#limits.admit(caller.keyId, caller.limits);
  }

  start(caller: Caller, model: string): RequestMeter {
    return new RequestMeter(caller, model, (row, tokens) => {
      this.#recorder.record(row);
      this.#limits.charge(caller.keyId, tokens);
    });
  }

  /** The usage rows of finished requests, written now (a usage query sees its caller's requests). */
  flush(): Promise<void> {
    return this.#recorder.flush();
  }
}

type Done = (row: Parameters<UsageRecorder["record"]>[0], tokens: number) => void;

/** One request's usage, from its arrival to its end. */
export class RequestMeter {
  readonly startedAtMs = Date.now();
  readonly #t0 = performance.now();
  readonly #caller: Caller;
  readonly #model: string;
  readonly #done: Done;
  #machineId: string | null = null;
  #ttfbMs: number | null = null;
  #prompt = 0;
  #completion = 0;
  #finished = false;

  constructor(caller: Caller, model: string, done: Done) {
    this.#caller = caller;
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
  }

  /** The first byte of the machine's answer (the first token, when streamed); later calls are ignored. */
  firstByte(): void {
    this.#ttfbMs ??= Math.round(this.elapsedMs());
  }

  /** The answer's token counts, as its `usage` says (or an estimate when it says none). */
  tokens(prompt: number | undefined, completion: number | undefined): void {
    if (typeof prompt === "number" && Number.isFinite(prompt)) this.#prompt = Math.max(0, Math.round(prompt));
    if (typeof completion === "number" && Number.isFinite(completion))
      this.#completion = Math.max(0, Math.round(completion));
  }

  /** Record the request with the status its client got; only the first call counts. */
  finish(status: number): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#done(
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
      },
      this.#prompt + this.#completion,
    );
  }
}

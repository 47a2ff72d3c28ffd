import type OpenAI from "openai";

/*
 * A steady load of short chat requests, as users would send them: N clients, each sending its next
 * request when the last one is answered. Every request is kept with how it ended, so a test or a
 * bench can count what was sent, answered, refused, hung or answered twice around a fault.
 */

export interface LoadRequest {
  client: number;
  startedAt: number;
  endedAt: number | undefined;
  /** "ok", or the error's words (with its HTTP status when there was one). */
  outcome: "ok" | "failed" | undefined;
  error: string | undefined;
  /** The completion's id (one per generated answer). */
  completionId: string | undefined;
  /** How many times the request settled: more than once would be a bug in the client path. */
  settled: number;
}

export interface LoadSummary {
  sent: number;
  succeeded: number;
  failed: number;
  /** No answer and no error within the deadline. */
  hung: number;
  /** Settled more than once, or given a completion another request was given too. */
  answeredTwice: number;
  /** Distinct error messages, with how often each came. */
  errors: Record<string, number>;
}

export class SteadyLoad {
  readonly requests: LoadRequest[] = [];
  readonly #client: OpenAI;
  readonly #model: string;
  readonly #clients: number;
  readonly #maxTokens: number;
  readonly deadlineMs: number;
  readonly #pauseAfterFailureMs: number;
  #running = false;
  #loops: Promise<void>[] = [];

  constructor(
    client: OpenAI,
    model: string,
    opts: {
      clients?: number;
      maxTokens?: number;
      deadlineMs?: number;
      /** A client that got an error waits this long before its next request, as a polite client would. */
      pauseAfterFailureMs?: number;
    } = {},
  ) {
    this.#client = client;
    this.#model = model;
    this.#clients = opts.clients ?? 4;
    this.#maxTokens = opts.maxTokens ?? 8;
    this.deadlineMs = opts.deadlineMs ?? 120_000;
    this.#pauseAfterFailureMs = opts.pauseAfterFailureMs ?? 0;
  }

  start(): void {
    this.#running = true;
    this.#loops = Array.from({ length: this.#clients }, (_, i) => this.#loop(i));
  }

  async #loop(client: number): Promise<void> {
    while (this.#running) {
      const r: LoadRequest = {
        client,
        startedAt: Date.now(),
        endedAt: undefined,
        outcome: undefined,
        error: undefined,
        completionId: undefined,
        settled: 0,
      };
      this.requests.push(r);
      await this.#client.chat.completions
        .create({
          model: this.#model,
          max_tokens: this.#maxTokens,
          temperature: 0,
          messages: [
            { role: "user", content: `Say a number (client ${client}, request ${this.requests.length}).` },
          ],
        })
        .then(
          (chat) => {
            r.settled++;
            r.endedAt = Date.now();
            r.outcome = "ok";
            r.completionId = chat.id;
          },
          (err: unknown) => {
            r.settled++;
            r.endedAt = Date.now();
            r.outcome = "failed";
            const e = err as { status?: number; message?: string };
            r.error = `${e.status ?? "no status"}: ${e.message ?? String(err)}`;
          },
        );
      if (r.outcome === "failed" && this.#pauseAfterFailureMs > 0)
        await new Promise((res) => setTimeout(res, this.#pauseAfterFailureMs));
    }
  }

  /** Stop sending; wait for the requests in flight to end, at most until their deadline. */
  async stop(): Promise<void> {
    this.#running = false;
    const pending = this.requests.filter((r) => r.outcome === undefined);
    const latest = Math.max(0, ...pending.map((r) => r.startedAt + this.deadlineMs - Date.now()));
    await Promise.race([Promise.all(this.#loops), new Promise((r) => setTimeout(r, latest).unref())]);
  }

  /** What happened to the requests started in [from, to). */
  summary(from = 0, to = Number.POSITIVE_INFINITY): LoadSummary {
    const now = Date.now();
    const ids = new Map<string, number>();
    for (const r of this.requests)
      if (r.completionId) ids.set(r.completionId, (ids.get(r.completionId) ?? 0) + 1);
    const out: LoadSummary = { sent: 0, succeeded: 0, failed: 0, hung: 0, answeredTwice: 0, errors: {} };
    for (const r of this.requests) {
      if (r.startedAt < from || r.startedAt >= to) continue;
      out.sent++;
      if (r.outcome === "ok") out.succeeded++;
      else if (r.outcome === "failed") {
        out.failed++;
        out.errors[r.error!] = (out.errors[r.error!] ?? 0) + 1;
      } else if (now - r.startedAt >= this.deadlineMs) out.hung++;
      if (r.settled > 1 || (r.completionId && ids.get(r.completionId)! > 1)) out.answeredTwice++;
    }
    return out;
  }

  /** Requests that failed, in order. */
  failures(): LoadRequest[] {
    return this.requests.filter((r) => r.outcome === "failed");
  }
}

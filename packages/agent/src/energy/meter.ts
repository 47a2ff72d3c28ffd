import type { EnergyReading } from "@beta9/protocol";
import type { EnergyProbe } from "./probe.ts";
import { combineParts, type EnergyPart } from "./reading.ts";

/**
 * How an engine's energy is split among the answers it gives (the rule the README states):
 *
 * Time is cut into buckets of at most `bucketMs` (one second); a bucket also ends whenever an answer
 * ends. The engine's energy in a bucket is split among the answers open during it by the tokens each
 * produced in it (counted as the agent relays them). An answer whose tokens cannot be seen as they
 * come (a non-streamed answer, or one still reading its prompt) counts as producing at the mean rate
 * of the others in that bucket, or one token when no one produced any. Energy in a bucket with no
 * answer open (the engine idle) belongs to no answer. An answer's energy is the sum of its shares.
 */
export interface MeteredAnswer {
  /** `n` tokens of this answer went out (streamed: one per event). */
  tokens(n: number): void;
  /** The answer ended: its energy, or undefined when nothing could be measured. */
  end(): Promise<EnergyReading | undefined>;
}

interface Open {
  tokens: number;
  /** Whether any token was ever counted for it. */
  seen: boolean;
  parts: Map<string, EnergyPart>;
}

export interface EnergyMeterOptions {
  bucketMs?: number;
  /**
   * With no answer open, buckets end only this often (an idle engine's energy is no one's; it is
   * still counted, in the next bucket). The next answer's begin() ends the idle bucket first.
   */
  idleBucketMs?: number;
  /** Each bucket's energy, for the machine's totals (/metrics). */
  onBucket?: (parts: EnergyPart[]) => void;
}

export class EnergyMeter {
  readonly #probe: EnergyProbe;
  readonly #onBucket: (parts: EnergyPart[]) => void;
  readonly #open = new Set<Open>();
  readonly #timer: NodeJS.Timeout;
  #last = new Map<string, EnergyPart>();
  #chain: Promise<void>;
  /** A bucket's end queued behind the one being read: answers that end meanwhile share it. */
  #queued: Promise<void> | undefined;
  readonly #idleBucketMs: number | undefined;
  /** When the current bucket began (its opening reading was asked for). */
  #bucketAt = Date.now();
  /** An idle tick was skipped: the current bucket holds idle time that must end before an answer joins. */
  #idle = false;
  /** The idle bucket's end that answers begun since wait for before they join. */
  #idleEnd: Promise<void> | undefined;

  constructor(probe: EnergyProbe, opts: EnergyMeterOptions = {}) {
    this.#probe = probe;
    this.#onBucket = opts.onBucket ?? (() => {});
    // The first reading is the baseline: energy before the meter started is no one's.
    this.#chain = this.#read().then((parts) => {
      this.#last = parts;
    });
    this.#idleBucketMs = opts.idleBucketMs;
    this.#timer = setInterval(() => this.#tick(), opts.bucketMs ?? 1_000);
    this.#timer.unref();
  }

  #tick(): void {
    const idle = this.#open.size === 0 && this.#idleBucketMs !== undefined;
    if (idle && Date.now() - this.#bucketAt < this.#idleBucketMs!) {
      this.#idle = true;
      return;
    }
    void this.closeBucket();
  }

  async #read(): Promise<Map<string, EnergyPart>> {
    const parts = await this.#probe().catch(() => [] as EnergyPart[]);
    return new Map(parts.map((p) => [p.source, p]));
  }

  /**
   * Ends the current bucket (on the next turn of the event loop) and splits its energy; serialized,
   * so buckets never overlap. Calls made before a queued end has begun its reading join it: under
   * load many answers end together, and one reading of the engine's CPU time serves them all (each
   * was open for the whole bucket).
   */
  closeBucket(): Promise<void> {
    if (this.#queued !== undefined) return this.#queued;
    // Read on the event loop's next turn: answers whose ends come in the same turn (each in its own
    // I/O callback) join this bucket's end instead of each reading the engine's CPU time again.
    const next = this.#chain.then(nextTurn).then(() => {
      this.#queued = undefined;
      return this.#bucket();
    });
    this.#queued = next;
    this.#chain = next;
    return next;
  }

  async #bucket(): Promise<void> {
    this.#bucketAt = Date.now();
    const now = await this.#read();
    const delta: EnergyPart[] = [];
    for (const [source, part] of now) {
      const before = this.#last.get(source);
      // A source seen for the first time starts counting from here.
      if (before !== undefined && part.joules >= before.joules)
        delta.push({ ...part, joules: part.joules - before.joules });
    }
    // Sources missing this time keep their last value, so their energy is counted when they return.
    for (const [source, part] of now) this.#last.set(source, part);
    this.#split(delta);
    // Cleared once read, not before: an answer begun while this reading ran waits for the next one.
    this.#idle = false;
    this.#onBucket(delta);
  }

  #split(delta: EnergyPart[]): void {
    const open = [...this.#open];
    if (open.length === 0 || delta.length === 0) {
      for (const a of open) a.tokens = 0;
      return;
    }
    const seen = open.filter((a) => a.seen && a.tokens > 0);
    const mean = seen.length > 0 ? seen.reduce((s, a) => s + a.tokens, 0) / seen.length : 1;
    const weights = open.map((a) =>
      a.seen && a.tokens > 0 ? a.tokens : a.seen && seen.length > 0 ? 0 : mean,
    );
    let total = weights.reduce((s, w) => s + w, 0);
    if (total <= 0) {
      weights.fill(1);
      total = weights.length;
    }
    open.forEach((a, i) => {
      const share = weights[i]! / total;
      for (const part of delta) {
        const mine = a.parts.get(part.source);
        const joules = part.joules * share;
        a.parts.set(part.source, mine ? { ...mine, joules: mine.joules + joules } : { ...part, joules });
      }
      a.tokens = 0;
    });
  }

  /** An answer began: it shares the buckets from now until its end(). */
  begin(): MeteredAnswer {
    const answer: Open = { tokens: 0, seen: false, parts: new Map() };
    if (this.#idle) {
      // The idle time since the last reading is no one's: its bucket ends before answers join, and
      // any end asked for from now on comes after it.
      this.#idle = false;
      this.#queued = undefined;
      const idleEnd = this.#chain.then(() => this.#bucket());
      this.#chain = this.#idleEnd = idleEnd;
      void idleEnd.then(() => {
        if (this.#idleEnd === idleEnd) this.#idleEnd = undefined;
      });
    }
    if (this.#idleEnd === undefined) this.#open.add(answer);
    else void this.#idleEnd.then(() => this.#open.add(answer));
    let result: Promise<EnergyReading | undefined> | undefined;
    return {
      tokens: (n) => {
        if (n <= 0) return;
        answer.tokens += n;
        answer.seen = true;
      },
      end: () => {
        result ??= this.closeBucket().then(() => {
          this.#open.delete(answer);
          return combineParts([...answer.parts.values()]);
        });
        return result;
      },
    };
  }

  close(): void {
    clearInterval(this.#timer);
  }
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

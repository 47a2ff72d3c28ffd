import type { StoredModelView, Usage } from "@beta9/protocol";
import { bytes } from "./format.ts";
import { type DashboardModel, type DashboardSources, readModel } from "./model.ts";

export interface DashboardStoreOptions {
  /** Redraw at least this often, for the clocks ("25s ago"); default 1 s. */
  tickMs?: number;
  /** Measure CPU and memory when heartbeats do not (the gateway is away); default: never. */
  sampleUsage?: () => Promise<Usage>;
}

/** Heartbeats older than this leave CPU and memory to the dashboard's own sampling. */
const USAGE_FRESH_MS = 5_000;

/**
 * The dashboard's state: a snapshot of the agent, rebuilt when the agent reports a change (state,
 * pulls, requests, a log line) and on a clock tick, for React's useSyncExternalStore.
 */
export class DashboardStore {
  readonly #src: DashboardSources;
  readonly #opts: DashboardStoreOptions;
  readonly #listeners = new Set<() => void>();
  readonly #unsubscribe: (() => void)[] = [];
  #snapshot: DashboardModel;
  #stopping = false;
  #pending: NodeJS.Timeout | undefined;
  #ticker: NodeJS.Timeout | undefined;
  #usage: Usage | null;
  #heartbeatUsage: Usage | null;
  #usageAt = 0;
  #sampling = false;

  constructor(src: DashboardSources, opts: DashboardStoreOptions = {}) {
    this.#src = src;
    this.#opts = opts;
    this.#usage = this.#heartbeatUsage = src.state.usage;
    this.#snapshot = this.#read();
  }

  /** Follow the agent until stop(). */
  start(): void {
    const changed = () => this.#schedule();
    const { state, pulls, activity, logs } = this.#src;
    state.on("change", changed);
    pulls.on("change", changed);
    activity.on("change", changed);
    logs.on("line", changed);
    const pulled = (m: StoredModelView) =>
      logs.push({
        time: Date.now(),
        level: "info",
        text: `pulled ${m.name}${m.size === null ? "" : ` (${bytes(m.size)})`}${
          m.converted_from
            ? `, quantized from ${m.converted_from.quantization ?? m.converted_from.format} to ${m.converted_from.target}`
            : ""
        }`,
      });
    pulls.on("pulled", pulled);
    this.#unsubscribe.push(
      () => pulls.off("pulled", pulled),
      () => state.off("change", changed),
      () => pulls.off("change", changed),
      () => activity.off("change", changed),
      () => logs.off("line", changed),
    );
    this.#ticker = setInterval(() => this.#tick(), this.#opts.tickMs ?? 1_000);
    this.#ticker.unref();
    this.#tick();
  }

  stop(): void {
    for (const off of this.#unsubscribe.splice(0)) off();
    clearInterval(this.#ticker);
    clearTimeout(this.#pending);
  }

  /** Show that the agent is shutting down. */
  setStopping(): void {
    this.#stopping = true;
    this.#refresh();
  }

  subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  getSnapshot = (): DashboardModel => this.#snapshot;

  #read(): DashboardModel {
    return readModel(this.#src, { now: Date.now(), stopping: this.#stopping, usage: this.#usage });
  }

  #refresh(): void {
    clearTimeout(this.#pending);
    this.#pending = undefined;
    this.#snapshot = this.#read();
    for (const l of this.#listeners) l();
  }

  /** Coalesce bursts (an engine printing while it loads) into one redraw. */
  #schedule(): void {
    if (this.#pending) return;
    this.#pending = setTimeout(() => this.#refresh(), 30);
    this.#pending.unref();
  }

  #tick(): void {
    const now = Date.now();
    const beat = this.#src.state.usage;
    if (beat !== this.#heartbeatUsage) {
      this.#heartbeatUsage = beat;
      this.#usage = beat;
      this.#usageAt = now;
    } else if (this.#opts.sampleUsage && !this.#sampling && now - this.#usageAt >= USAGE_FRESH_MS) {
      this.#sampling = true;
      this.#opts.sampleUsage().then(
        (u) => {
          this.#sampling = false;
          // A heartbeat that came meanwhile is as fresh and is what the gateway saw.
          if (this.#src.state.usage !== this.#heartbeatUsage) return;
          this.#usage = u;
          this.#usageAt = Date.now();
          this.#schedule();
        },
        () => {
          this.#sampling = false;
          this.#usageAt = Date.now();
        },
      );
    }
    this.#refresh();
  }
}

import { EventEmitter } from "node:events";
import type { StoredModelView } from "@beta9/protocol";
import type { ModelPuller, PullerOptions } from "./puller.ts";

/** A pull under way, as its last progress report left it. */
export interface ActivePull {
  model: string;
  status: string;
  completed?: number | undefined;
  total?: number | undefined;
  /** What completed/total count when not bytes ("tensors" while converting). */
  unit?: "tensors" | undefined;
  startedAt: number;
}

/**
 * The pulls running on this agent, for the dashboard: wraps the model store's pull so that every pull
 * (from a local caller or from the gateway) is seen, whoever asked for it.
 */
export class PullTracker extends EventEmitter<{ change: []; pulled: [StoredModelView] }> {
  readonly #active = new Map<number, ActivePull>();
  #next = 0;

  active(): ActivePull[] {
    return [...this.#active.values()];
  }

  /** The same puller, reporting each pull's progress here as well as to its caller. */
  track(puller: ModelPuller): ModelPuller {
    return {
      pull: async (
        name: string,
        source: string | undefined,
        opts: PullerOptions,
      ): Promise<StoredModelView> => {
        const id = this.#next++;
        this.#active.set(id, { model: name, status: "starting", startedAt: Date.now() });
        this.emit("change");
        try {
          const stored = await puller.pull(name, source, {
            ...opts,
            onProgress: (p) => {
              this.#active.set(id, {
                model: name,
                status: p.status,
                completed: p.completed,
                total: p.total,
                unit: p.unit,
                startedAt: this.#active.get(id)?.startedAt ?? Date.now(),
              });
              this.emit("change");
              opts.onProgress(p);
            },
          });
          // The dashboard logs the end of a pull, which progress reports never say.
          this.emit("pulled", stored);
          return stored;
        } finally {
          this.#active.delete(id);
          this.emit("change");
        }
      },
      checkOwner: (name, owner) => puller.checkOwner(name, owner),
      list: async () => (await puller.list?.()) ?? [],
    };
  }
}

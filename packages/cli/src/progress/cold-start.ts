import type { Beta9Client, ReplicaView } from "@beta9/sdk";
import type { Context } from "../context.ts";
import { spinnerLine } from "./status-line.ts";

/** How often the replicas are asked while a model is being started. */
const POLL_MS = 1000;

/** On a terminal, a wait this long for the first token gets a spinner even when its cause is unknown. */
const QUIET_MS = 1500;

export interface ColdStartWatch {
  /** The first token came (`answered`), or the request ended otherwise: stop showing the wait. */
  stop(answered: boolean): void;
}

/**
 * While a request waits for a deployed model that has no ready replica (the gateway is placing and
 * loading one: a cold start), shows what the replicas are doing — a spinner on a terminal, a line per
 * change otherwise, on stderr — until the first token. When that cannot be told (a model served
 * without a deployment, or a key that may not read deployments: an inference-only key), a terminal
 * still gets a spinner once the first token is slow to come.
 */
export function watchColdStart(ctx: Context, client: Beta9Client, model: string): ColdStartWatch {
  const started = ctx.now();
  const spinner = spinnerLine(ctx.io);
  let stopped = false;
  let shown = false;
  let last = "";
  let timer: NodeJS.Timeout | undefined;

  const show = (state: string) => {
    if (stopped) return;
    shown = true;
    if (spinner) spinner.set(`starting ${model}: ${state}`);
    else if (state !== last) ctx.note(`starting ${model}: ${state}`);
    last = state;
  };

  const poll = async () => {
    const state = await coldState(client, model);
    if (stopped) return;
    if (state.kind === "unknown") {
      if (spinner && !shown) {
        timer = setTimeout(() => {
          if (!stopped) spinner.set(`waiting for ${model} to answer`);
        }, QUIET_MS);
        timer.unref();
      }
      return;
    }
    if (state.kind === "ready" && !shown) return; // warm: nothing to show
    show(state.kind === "ready" ? "ready, waiting for the first token" : state.text);
    timer = setTimeout(() => void poll(), POLL_MS);
    timer.unref();
  };
  void poll();

  return {
    stop(answered) {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      spinner?.clear();
      if (shown && answered) {
        ctx.note(`${model} is ready (${Math.round((ctx.now() - started) / 1000)}s)`);
      }
    },
  };
}

type ColdState = { kind: "unknown" } | { kind: "ready" } | { kind: "starting"; text: string };

/** What the gateway says of the model's replicas; "unknown" when it is no deployment or may not be read. */
async function coldState(client: Beta9Client, model: string): Promise<ColdState> {
  try {
    const [deployments, replicas] = await Promise.all([client.deployments.list(), client.replicas.list()]);
    if (!deployments.deployments.some((d) => d.name === model)) return { kind: "unknown" };
    const mine = replicas.replicas.filter((r) => r.deployment === model);
    if (mine.some((r) => r.state === "ready")) return { kind: "ready" };
    if (mine.length === 0) return { kind: "starting", text: "no replica running; placing one" };
    // The gateway lists a load it started with no machine yet; once a machine reports it, that says more.
    const placed = mine.filter((r) => r.machine_name);
    return { kind: "starting", text: (placed.length ? placed : mine).map(describe).join(", ") };
  } catch {
    // A key without the read scope, or a gateway busy with the request itself: the answer will tell.
    return { kind: "unknown" };
  }
}

function describe(r: ReplicaView): string {
  const state = r.state === "loading" && !r.machine_name ? "pulling and loading the model" : r.state;
  return r.machine_name ? `${state} on ${r.machine_name}` : state;
}

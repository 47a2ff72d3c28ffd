import type { DeploymentPullEvent } from "@beta9/sdk";
import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { bytes } from "../../format.ts";
import { pullView } from "../../progress/pull-progress.ts";
import { Interrupted } from "../../user-error.ts";

export function addModelPull(model: Command, ctx: Context): void {
  model
    .command("pull")
    .description("fetch a deployed model onto the machines that will serve it, before its first request")
    .argument("<name>", "the model's name, from b9 model list")
    .option("--json", "print the gateway's progress events, one JSON object a line (for scripts)")
    .action(async (name: string, opts: { json?: boolean }) => {
      const stream = ctx.client().deployments.pull(name);
      const stopInterrupt = ctx.onInterrupt(() => stream.abort());
      const view = opts.json ? undefined : pullView(ctx.io);
      let done: DeploymentPullEvent | undefined;
      try {
        for await (const event of stream) {
          if (opts.json) ctx.io.stdout(`${JSON.stringify(event)}\n`);
          else view?.update(event);
          if (event.status === "success") done = event;
        }
      } finally {
        view?.end();
        stopInterrupt();
      }
      if (stream.aborted) throw new Interrupted();
      if (!opts.json && done) ctx.print(summary(name, done));
    });
}

function summary(name: string, done: DeploymentPullEvent): string {
  const machines = (done.machines ?? []).map((m) => m.name).join(", ") || "its machines";
  if (!done.model) return `Model ${name} is already on ${machines}.`;
  const facts = [
    done.model.sha256 ? `sha256 ${done.model.sha256.slice(0, 12)}…` : undefined,
    done.model.size ? bytes(done.model.size) : undefined,
  ].filter(Boolean);
  return `Model ${name} pulled on ${machines}${facts.length ? ` (${facts.join(", ")})` : ""}; its first request only loads it.`;
}

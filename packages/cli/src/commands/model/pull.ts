import { type DeploymentPullEvent, NotFoundError } from "@beta9/sdk";
import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { bytes } from "../../format.ts";
import { pullView } from "../../progress/pull-progress.ts";
import { Interrupted, UserError } from "../../user-error.ts";

export function addModelPull(model: Command, ctx: Context): void {
  model
    .command("pull")
    .description("fetch a deployed model onto the machines that will serve it, before its first request")
    .argument("<name>", "the model's name, from b9 model list")
    .option(
      "--source <source>",
      "deploy it from this source first when no deployment has the name (scales to zero, as b9 model deploy NAME --source does)",
    )
    .option(
      "--quantize <type>",
      "with --source: each machine converts the GGUF to this llama.cpp type once (Q4_K_M, Q8_0 …)",
    )
    .option("--json", "print the gateway's progress events, one JSON object a line (for scripts)")
    .action(async (name: string, opts: { source?: string; quantize?: string; json?: boolean }) => {
      if (opts.source !== undefined) await deployOnce(ctx, name, opts.source, opts.quantize);
      else if (opts.quantize !== undefined)
        throw new UserError(
          "--quantize needs --source: a deployment's type is set when it is deployed",
          `see it with b9 model show ${name}`,
        );
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

/** Deploy `name` from `source` unless it is deployed already from that source, as that type. */
async function deployOnce(
  ctx: Context,
  name: string,
  source: string,
  quantize: string | undefined,
): Promise<void> {
  const client = ctx.client();
  const existing = await client.deployments.get(name).catch((err: unknown) => {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  });
  if (!existing) {
    await client.deployments.create({ name, source, quantize });
    return;
  }
  const same =
    existing.source === source && (existing.quantize ?? null) === (quantize?.trim().toUpperCase() ?? null);
  if (!same)
    throw new UserError(
      `${existing.name} is deployed already from ${existing.source}${existing.quantize ? ` as ${existing.quantize}` : ""}`,
      `pull it without --source, or remove it first with b9 model remove ${existing.name}`,
    );
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

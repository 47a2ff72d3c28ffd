import type { Scope } from "@beta9/sdk";
import { type Command, InvalidArgumentError } from "commander";
import type { Context } from "../../context.ts";
import { limitsText, positiveInt } from "../../limits.ts";
import { JSON_FLAG_HELP } from "../../output.ts";
import {
  type ResidencyOptions,
  residencyBody,
  residencyOptions,
  residencyText,
} from "../workspace/residency.ts";

/** Typed as a record so the compiler fails here when the protocol adds or drops a scope. */
const SCOPES: Record<Scope, string> = {
  admin:
    "manage the workspace's keys and deployments; in the default workspace also machines, pools, join tokens and workspaces",
  inference: "call models",
  read: "read machines, pools, join tokens, keys and jobs",
  jobs: "submit, follow and cancel the workspace's jobs",
};

interface Options extends ResidencyOptions {
  scopes: Scope[];
  workspace?: string;
  rpm?: number;
  tpm?: number;
  json?: boolean;
}

export function addKeyCreate(key: Command, ctx: Context): void {
  const create = key
    .command("create")
    .description("make an API key; it is shown only once")
    .argument("<name>", "what the key is for, e.g. ci or alice-laptop")
    .requiredOption(
      "--scopes <list>",
      `comma-separated: ${Object.entries(SCOPES)
        .map(([s, what]) => `${s} (${what})`)
        .join(", ")}`,
      scopeList,
    )
    .option(
      "--workspace <name>",
      "workspace the key acts in (default: yours; another takes a key of the default workspace)",
    )
    .option("--rpm <n>", "requests per minute the key may make (default: no limit)", positiveInt("--rpm"))
    .option(
      "--tpm <n>",
      "tokens (prompt + completion) per minute the key may use (default: no limit)",
      positiveInt("--tpm"),
    );
  residencyOptions(create, "the key's (within its workspace's, never wider)")
    .option("--json", JSON_FLAG_HELP)
    .action(async (name: string, opts: Options) => {
      const view = await ctx.client().keys.create({
        name,
        scopes: opts.scopes,
        workspace: opts.workspace,
        ...(opts.rpm === undefined ? {} : { rpm_limit: opts.rpm }),
        ...(opts.tpm === undefined ? {} : { tpm_limit: opts.tpm }),
        ...residencyBody(opts),
      });
      if (opts.json) return ctx.printJson(view);
      const limits = limitsText(view);
      const where = residencyText(view);
      ctx.print(
        [
          `API key ${view.name} created (scopes ${view.scopes.join(", ")}; workspace ${view.workspace}${limits === "-" ? "" : `; limits ${limits}`}${where === "anywhere" ? "" : `; runs only in ${where}`}):`,
          "",
          `  ${view.key ?? "(the gateway sent no key)"}`,
          "",
          "It is shown only this once; store it now, e.g. as BETA9_API_KEY.",
        ].join("\n"),
      );
    });
}

function scopeList(value: string): Scope[] {
  const scopes = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (scopes.length === 0) throw new InvalidArgumentError("name at least one scope");
  const known = Object.keys(SCOPES);
  for (const scope of scopes) {
    if (!known.includes(scope)) {
      throw new InvalidArgumentError(`unknown scope "${scope}"; choose from ${known.join(", ")}`);
    }
  }
  return [...new Set(scopes)] as Scope[];
}

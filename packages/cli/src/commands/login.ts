import { resolve } from "node:path";
import { PermissionDeniedError } from "@beta9/sdk";
import type { Command } from "commander";
import { writeConfig } from "../config.ts";
import { type Context, makeClient } from "../context.ts";
import { JSON_FLAG_HELP } from "../output.ts";
import { UserError } from "../user-error.ts";

interface Options {
  gateway?: string;
  apiKey?: string;
  caFile?: string;
  verify: boolean;
  json?: boolean;
}

export function addLogin(program: Command, ctx: Context): void {
  program
    .command("login")
    .description("check a gateway URL and API key, and save them for later commands")
    .option("--gateway <url>", "the gateway, e.g. http://127.0.0.1:1994 (default: $BETA9_GATEWAY)")
    .option(
      "--api-key <key>",
      "a b9_… API key (default: $BETA9_API_KEY, which keeps it out of shell history)",
    )
    .option(
      "--ca-file <file>",
      "PEM file of the CA that signed the gateway's certificate, if the system does not trust it (default: $BETA9_CA_FILE)",
    )
    .option("--no-verify", "save without asking the gateway whether the key works")
    .option("--json", JSON_FLAG_HELP)
    .action(async (opts: Options) => {
      const env = ctx.io.env;
      const gateway = opts.gateway ?? env.BETA9_GATEWAY;
      const apiKey = opts.apiKey ?? env.BETA9_API_KEY;
      if (!gateway)
        throw new UserError("login needs the gateway's URL", "run b9 login --gateway URL --api-key KEY");
      if (!apiKey) throw new UserError("login needs an API key", "run b9 login --gateway URL --api-key KEY");

      const caFile = opts.caFile
        ? { value: resolve(opts.caFile), source: "--ca-file" }
        : env.BETA9_CA_FILE
          ? { value: env.BETA9_CA_FILE, source: "BETA9_CA_FILE" }
          : undefined;
      const client = makeClient(gateway, apiKey, "--gateway", caFile);
      let version: string | null = null;
      if (opts.verify) {
        version = (await client.health()).version;
        try {
          await client.pools.list(); // any authenticated read: a wrong key fails here, with 401
        } catch (error) {
          if (!(error instanceof PermissionDeniedError)) throw error;
          ctx.note("note: the key works but cannot read machines, pools or tokens (it lacks the read scope)");
        }
      }

      const path = ctx.config().path;
      writeConfig(path, {
        gateway: client.baseUrl,
        api_key: apiKey,
        ...(caFile ? { ca_file: caFile.value } : {}),
      });

      // The environment wins over the file, so a stale variable would silently undo this login.
      for (const [name, saved] of [
        ["BETA9_GATEWAY", client.baseUrl],
        ["BETA9_API_KEY", apiKey],
      ] as const) {
        const set = env[name];
        if (set && set !== saved)
          ctx.note(`note: ${name} is set and wins over the saved file; unset it to use this login`);
      }

      if (opts.json) return ctx.printJson({ gateway: client.baseUrl, version, config_path: path });
      const checked = version ? ` (gateway version ${version})` : "";
      ctx.print(`Logged in to ${client.baseUrl}${checked}.\nSaved to ${path}.`);
    });
}

import { resolve } from "node:path";
import { ApiError, type Beta9Client, PermissionDeniedError } from "@beta9/sdk";
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
  sso?: boolean;
  json?: boolean;
}

export function addLogin(program: Command, ctx: Context): void {
  program
    .command("login")
    .description("check a gateway URL and API key (or sign in with --sso), and save them for later commands")
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
    .option(
      "--sso",
      "sign in with your organisation's identity instead of a key: approve the sign-in in a browser (device flow)",
    )
    .option("--json", JSON_FLAG_HELP)
    .action(async (opts: Options) => {
      const env = ctx.io.env;
      const gateway =
        opts.gateway ?? env.BETA9_GATEWAY ?? (opts.sso ? ctx.config().gateway?.value : undefined);
      if (opts.sso) return loginWithSso(ctx, opts, gateway);
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

/** The file's --ca-file, the flag's, or $BETA9_CA_FILE. */
function caFileOf(ctx: Context, opts: Options) {
  if (opts.caFile) return { value: resolve(opts.caFile), source: "--ca-file" };
  return ctx.io.env.BETA9_CA_FILE ? { value: ctx.io.env.BETA9_CA_FILE, source: "BETA9_CA_FILE" } : undefined;
}

/**
 * `b9 login --sso`: the device flow (RFC 8628) through the gateway, which is the identity provider's
 * client. The person approves in a browser; the gateway's short-lived token and its refresh token are
 * saved (mode 0600) and renewed before commands (Context.renewSignIn).
 */
async function loginWithSso(ctx: Context, opts: Options, gateway: string | undefined): Promise<void> {
  if (!gateway) throw new UserError("login needs the gateway's URL", "run b9 login --sso --gateway URL");
  const caFile = caFileOf(ctx, opts);
  const client: Beta9Client = makeClient(gateway, "", "--gateway", caFile);
  const start = await client.auth.startDevice();
  const where = start.verification_uri_complete ?? start.verification_uri;
  // On stderr: a script reading --json output on stdout still sees the instructions.
  ctx.note(`Open ${where} in a browser and confirm the code ${start.user_code} to sign in.`);
  ctx.note("Waiting for you to approve the sign-in (Ctrl+C to stop)…");
  let intervalMs = start.interval * 1000;
  const deadline = ctx.now() + start.expires_in * 1000;
  let stopped = false;
  const stopListening = ctx.onInterrupt(() => {
    stopped = true;
  });
  try {
    for (;;) {
      await new Promise((r) => setTimeout(r, intervalMs));
      if (stopped) throw new UserError("sign-in stopped", "run b9 login --sso again");
      if (ctx.now() > deadline)
        throw new UserError("the sign-in was not approved in time", "run b9 login --sso again");
      try {
        const tokens = await client.auth.pollDevice(start.device_code);
        const path = ctx.config().path;
        writeConfig(path, {
          gateway: client.baseUrl,
          api_key: tokens.access_token,
          sso: {
            expires_at: tokens.expires_at,
            refresh_token: tokens.refresh_token,
            refresh_expires_at: tokens.refresh_expires_at,
          },
          ...(caFile ? { ca_file: caFile.value } : {}),
        });
        if (ctx.io.env.BETA9_API_KEY)
          ctx.note("note: BETA9_API_KEY is set and wins over the saved sign-in; unset it to use this login");
        const who = tokens.identity;
        if (opts.json) return ctx.printJson({ gateway: client.baseUrl, identity: who, config_path: path });
        ctx.print(
          `Signed in to ${client.baseUrl} as ${who.name} (workspace ${who.workspace}, scopes ${who.scopes.join(",")}).\nSaved to ${path}.`,
        );
        return;
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        if (error.code === "authorization_pending") continue;
        // RFC 8628: slow down by five seconds each time asked.
        if (error.code === "slow_down" || error.code === "rate_limited") {
          intervalMs += 5000;
          continue;
        }
        throw new UserError(error.message, "run b9 login --sso again, or ask the pool's operator");
      }
    }
  } finally {
    stopListening();
  }
}

import type { Command } from "commander";
import { writeConfig } from "../config.ts";
import { type Context, makeClient } from "../context.ts";
import { JSON_FLAG_HELP } from "../output.ts";

/**
 * `b9 logout`: ends a single sign-on session on the gateway and forgets the saved credential (the
 * gateway's address is kept, so `b9 login --sso` needs no --gateway next time).
 */
export function addLogout(program: Command, ctx: Context): void {
  program
    .command("logout")
    .description(
      "sign out: end the saved single sign-on session on the gateway and forget the saved key or token",
    )
    .option("--json", JSON_FLAG_HELP)
    .action(async (opts: { json?: boolean }) => {
      const { gateway, apiKey, sso, caFile, path } = ctx.config();
      let ended = false;
      if (gateway && apiKey && sso) {
        try {
          await makeClient(gateway.value, apiKey.value, gateway.source, caFile).auth.endSession();
          ended = true;
        } catch (error) {
          // Forgotten here all the same; the token ends on its own within minutes.
          ctx.note(
            `note: the gateway could not end the session (${(error as Error).message}); it expires on its own`,
          );
        }
      }
      const fromFile = apiKey?.source === path;
      if (gateway && gateway.source === path)
        writeConfig(path, {
          gateway: gateway.value,
          ...(caFile?.source === path ? { ca_file: caFile.value } : {}),
        });
      if (apiKey && !fromFile) ctx.note(`note: ${apiKey.source} is set and still holds a key; unset it`);
      if (opts.json) return ctx.printJson({ signed_out: fromFile, session_ended: ended, config_path: path });
      ctx.print(
        fromFile ? `Signed out; removed the saved credential from ${path}.` : "Nothing saved to sign out of.",
      );
    });
}

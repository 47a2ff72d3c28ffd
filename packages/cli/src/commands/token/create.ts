import { type Command, InvalidArgumentError } from "commander";
import type { Context } from "../../context.ts";
import { parseDuration } from "../../duration.ts";
import { relative } from "../../format.ts";
import { JSON_FLAG_HELP } from "../../output.ts";
import { countries } from "../model/deploy.ts";

/** The gateway refuses longer; saying so here is faster than a round trip. */
const MAX_TTL_SECONDS = 30 * 86_400;

interface Options {
  pool?: string;
  country?: string;
  ttl?: number;
  uses?: number;
  description?: string;
  json?: boolean;
}

export function addTokenCreate(token: Command, ctx: Context): void {
  token
    .command("create")
    .description("make a join token; a machine joins the pool with b9agent init --token TOKEN")
    .option("--pool <pool>", "pool the machine joins (default: the gateway's default pool)")
    .option("--ttl <duration>", "how long the token works: 30s, 15m, 1h, 7d (default 1h, at most 30d)", ttl)
    .option("--uses <n>", "how many machines may join with it (default 1)", positiveInteger)
    .option(
      "--country <code>",
      "the country the machines joining with it are in (ISO 3166, e.g. DE): work pinned to countries or the EU is placed by it, never by what a machine says",
      country,
    )
    .option("--description <text>", "a note for b9 token list")
    .option("--json", JSON_FLAG_HELP)
    .action(async (opts: Options) => {
      const client = ctx.client();
      const view = await client.tokens.create({
        pool: opts.pool,
        ttl_seconds: opts.ttl,
        uses: opts.uses,
        description: opts.description,
        ...(opts.country ? { country: opts.country } : {}),
      });
      if (opts.json) return ctx.printJson(view);

      const secret = view.token ?? "(the gateway sent no token)";
      const uses = view.uses_total === 1 ? "1 machine" : `${view.uses_total} machines`;
      const address = agentAddress(client.baseUrl);
      const lines = [
        `Join token for pool ${view.pool}${view.country ? ` in ${view.country}` : ""} (expires ${relative(view.expires_at, ctx.now())}, for ${uses}):`,
        "",
        `  ${secret}`,
        "",
        "It is shown only this once. On the machine to add, run:",
        "",
        `  b9agent init --gateway ${address.hostPort} --token ${secret}`,
      ];
      if (address.loopback) {
        lines.push("", `(${address.host} is this computer; use an address the new machine can reach.)`);
      }
      ctx.print(lines.join("\n"));
    });
}

function ttl(value: string): number {
  let seconds: number;
  try {
    seconds = parseDuration(value);
  } catch (error) {
    throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
  }
  if (seconds > MAX_TTL_SECONDS) throw new InvalidArgumentError("a join token lives at most 30d");
  return seconds;
}

function country(value: string): string {
  const codes = countries(value);
  if (codes.length !== 1)
    throw new InvalidArgumentError("the machines of a token are in one country, e.g. DE");
  return codes[0]!;
}

export function positiveInteger(value: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1) {
    throw new InvalidArgumentError(`"${value}" is not a whole number of at least 1`);
  }
  return Number(value);
}

/** b9agent takes HOST:PORT, so the port is spelled out even when the URL leaves it implicit. */
function agentAddress(baseUrl: string): { host: string; hostPort: string; loopback: boolean } {
  const url = new URL(baseUrl);
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  const host = url.hostname;
  const loopback = host === "localhost" || host.startsWith("127.") || host === "[::1]";
  return { host, hostPort: `${host}:${port}`, loopback };
}

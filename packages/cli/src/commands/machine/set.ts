import { type Command, InvalidArgumentError } from "commander";
import type { Context } from "../../context.ts";
import { JSON_FLAG_HELP } from "../../output.ts";
import { UserError } from "../../user-error.ts";
import { countries } from "../model/deploy.ts";

interface Options {
  country?: string | null;
  pue?: number;
  json?: boolean;
}

export function addMachineSet(machine: Command, ctx: Context): void {
  machine
    .command("set")
    .description(
      "set where a machine stands and its site's PUE (the operator only): placement and residency read this country, never the one the machine declares",
    )
    .argument("<id>", "the machine's id, from b9 machine list")
    .option(
      "--country <code|none>",
      "ISO 3166 code of the country it is in, e.g. DE; none to clear it",
      country,
    )
    .option(
      "--pue <n>",
      "power usage effectiveness of its site, 1.0 (a home machine) to 3.0; e.g. 1.2 for a good data centre",
      pue,
    )
    .option("--json", JSON_FLAG_HELP)
    .action(async (id: string, opts: Options) => {
      if (opts.country === undefined && opts.pue === undefined)
        throw new UserError("say what to set", `e.g. b9 machine set ${id} --country DE --pue 1.2`);
      const m = await ctx.client().machines.set(id, {
        ...(opts.country === undefined ? {} : { country: opts.country }),
        ...(opts.pue === undefined ? {} : { pue: opts.pue }),
      });
      if (opts.json) return ctx.printJson(m);
      const declared =
        m.declared_country && m.declared_country !== m.country ? ` (it declares ${m.declared_country})` : "";
      ctx.print(`Machine ${m.id}: country ${m.country ?? "not set"}${declared}, PUE ${m.pue ?? 1}.`);
    });
}

function country(value: string): string | null {
  if (value.trim().toLowerCase() === "none") return null;
  const codes = countries(value);
  if (codes.length !== 1) throw new InvalidArgumentError("a machine is in one country, e.g. --country DE");
  return codes[0]!;
}

/** The gateway checks the range too; saying so here spares a round trip. */
function pue(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value.trim()) || n < 1 || n > 3)
    throw new InvalidArgumentError(`a PUE is a number from 1.0 (a home machine) to 3.0, not "${value}"`);
  return n;
}

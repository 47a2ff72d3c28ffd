import type { Command } from "commander";
import { countries, region } from "../model/deploy.ts";

/** `--region eu` and `--countries DE,FR`: where a workspace's or key's work may run. */
export interface ResidencyOptions {
  /** "none" lifts it (commander keeps no null from a parser). */
  region?: "eu" | "none";
  countries?: string[];
}

/** Adds the residency options; `clearable` also takes "none" (for set, to lift a restriction). */
export function residencyOptions(cmd: Command, whose: string, clearable = false): Command {
  const none = clearable ? "|none" : "";
  return cmd
    .option(
      `--region <eu${none}>`,
      `${whose} work (deployments, jobs, pulls, requests) runs only on machines in the EU`,
      clearable ? (v: string) => (v.trim().toLowerCase() === "none" ? "none" : region(v)) : region,
    )
    .option(
      `--countries <codes${none}>`,
      `${whose} work runs only on machines in these countries, ISO 3166 codes: DE,FR`,
      clearable ? (v: string) => (v.trim().toLowerCase() === "none" ? [] : countries(v)) : countries,
    );
}

/** The options as the API's fields (those given only). */
export function residencyBody(o: ResidencyOptions): { region?: "eu" | null; countries?: string[] } {
  return {
    ...(o.region === undefined ? {} : { region: o.region === "none" ? null : o.region }),
    ...(o.countries === undefined ? {} : { countries: o.countries }),
  };
}

/** "the EU", "DE,FR", "DE,FR in the EU" or "anywhere", for what the CLI prints. */
export function residencyText(v: {
  region?: "eu" | null | undefined;
  countries?: string[] | undefined;
}): string {
  const list = (v.countries ?? []).join(",");
  if (v.region === "eu") return list ? `${list} in the EU` : "the EU";
  return list || "anywhere";
}

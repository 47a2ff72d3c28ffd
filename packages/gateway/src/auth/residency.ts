import {
  Beta9Error,
  type CreateJob,
  describeResidency,
  EU_COUNTRIES,
  intersectCountries,
  JOB_ENDED,
  JOB_STATES,
  parseCountry,
  type Residency,
  residencyCountries,
} from "@beta9/protocol";
import type { Store } from "@beta9/store";
import type { DeploymentSpec } from "../scheduler/replicas.ts";

/*
 * Residency: where a workspace's (and within it a key's) work may run. The allowed countries are the
 * workspace's set narrowed by the key's; every place work lands (placement, routing, pulls) checks a
 * machine's operator-set country against them, so a request is refused rather than served elsewhere.
 */

/** Where a caller's work may run: the countries allowed (null: anywhere), and the same in words. */
export interface CallerResidency {
  countries: ReadonlySet<string> | null;
  /** "the EU", "DE,FR", or "the EU (workspace) and DE (key)": for refusals. */
  text: string;
}

/** A stored row's residency columns as the wire's. */
export function residencyOf(row: { region: string | null; countries: string }): {
  region: "eu" | null;
  countries: string[];
} {
  return { region: row.region === "eu" ? "eu" : null, countries: row.countries.split(",").filter(Boolean) };
}

/** The wire's residency as the store's columns. */
export function residencyColumns(r: Residency): { region: string | null; countries: string } {
  return { region: r.region, countries: r.countries.join(",") };
}

/**
 * A residency from a request, validated: each code assigned by ISO (not only two letters), and a
 * region with countries keeps some country (DE in the EU, not US in the EU).
 */
export function parseResidency(
  body: { region?: "eu" | null; countries?: readonly string[] },
  base?: Residency,
): Residency {
  const r: Residency = {
    region: body.region === undefined ? (base?.region ?? null) : body.region,
    countries: body.countries === undefined ? (base?.countries ?? []) : body.countries.map(parseCountry),
  };
  const allowed = residencyCountries(r);
  if (allowed !== null && allowed.size === 0)
    throw new Beta9Error(
      "bad_request",
      `none of ${r.countries.join(",")} is in the EU: name EU countries with --region eu, or drop --region`,
    );
  return r;
}

/** What a workspace with residency `ws` and a key with `key` may use. */
export function callerResidency(ws: Residency, key: Residency): CallerResidency {
  const countries = intersectCountries(residencyCountries(ws), residencyCountries(key));
  const parts = [ws, key].filter((r) => residencyCountries(r) !== null).map(describeResidency);
  return { countries, text: parts.join(" and ") || "anywhere" };
}

/** Refuses a key residency naming a country its workspace may not run in (a key without one inherits it). */
export function refuseWider(key: Residency, ws: Residency, workspaceName: string): void {
  const inner = residencyCountries(key);
  const outer = residencyCountries(ws);
  if (outer === null || inner === null) return;
  const outside = [...inner].filter((c) => !outer.has(c));
  if (outside.length === 0) return;
  throw new Beta9Error(
    "residency",
    `workspace ${workspaceName} runs only in ${describeResidency(ws)}; a key cannot widen that (${outside.join(",")} is outside it)`,
  );
}

/** Whether every country `r` allows is one `allowed` allows. */
export function liesWithin(r: Residency, allowed: CallerResidency): boolean {
  if (!allowed.countries) return true;
  const inner = residencyCountries(r);
  return inner !== null && [...inner].every((c) => allowed.countries?.has(c));
}

/**
 * The deployment narrowed to the countries the caller may run in (its key may allow fewer than its
 * workspace); null when none of them is one the deployment may run in.
 */
export function narrowDeployment(dep: DeploymentSpec, r: CallerResidency): DeploymentSpec | null {
  if (!r.countries) return dep;
  const allowed = residencyCountries({ region: dep.region === "eu" ? "eu" : null, countries: dep.countries });
  const countries = [...r.countries].filter((c) => allowed?.has(c) ?? true).sort();
  return countries.length === 0 ? null : { ...dep, countries, region: null };
}

/** Whether a machine in `country` (operator-set; null: unknown) may take the caller's work. */
export function residencyAllows(r: CallerResidency | null | undefined, country: string | null): boolean {
  return !r?.countries || (country !== null && r.countries.has(country));
}

/**
 * Where work that asks `asked` (a job's or deployment's --country/--region) may run for a caller allowed
 * `allowed`: countries it names outside are refused (a mistake to see, not narrowed away silently); a
 * region, or nothing, is narrowed to the allowed countries. `what` starts the refusal ("this job").
 */
export function narrowAsked(asked: Residency, allowed: CallerResidency, what: string): Residency {
  if (!allowed.countries) return asked;
  const permitted = allowed.countries;
  const outside = asked.countries.filter((c) => !permitted.has(c));
  if (outside.length > 0)
    throw new Beta9Error(
      "residency",
      `${what} may run only in ${allowed.text}, and ${outside.join(",")} is outside it; name countries within it, or leave --country out`,
    );
  if (asked.countries.length > 0) return asked;
  const countries = [...permitted].filter((c) => asked.region !== "eu" || EU_COUNTRIES.has(c)).sort();
  if (countries.length === 0)
    throw new Beta9Error("residency", `${what} may run only in ${allowed.text}, none of it in the EU`);
  return { region: null, countries };
}

/** A job's (or any) spec with its countries narrowed to the caller's residency (see narrowAsked). */
export function narrowSpec<T extends { countries?: string[] | undefined; region?: "eu" | undefined }>(
  spec: T,
  allowed: CallerResidency,
  what: string,
): T {
  if (!allowed.countries) return spec;
  const where = narrowAsked({ countries: spec.countries ?? [], region: spec.region ?? null }, allowed, what);
  const { region: _region, ...rest } = spec;
  return { ...rest, countries: [...where.countries], ...(where.region ? { region: where.region } : {}) } as T;
}

/**
 * Refuses a residency change while a job not ended yet (of the workspace, or of one key) may run
 * outside `allowed`: its spec was narrowed when it was submitted, and it is placed by that spec.
 * `whose` ends the hint ("the workspace", "the key").
 */
export async function refuseWhileJobsOutside(
  store: Store,
  workspaceId: string,
  allowed: CallerResidency,
  whose: string,
  keyId?: string,
): Promise<void> {
  if (!allowed.countries) return;
  const jobs = await store.jobs.list(workspaceId, {
    states: JOB_STATES.filter((j) => !JOB_ENDED.has(j)),
    limit: 1000,
  });
  const outside = jobs.filter((j) => {
    if (keyId !== undefined && j.key_id !== keyId) return false;
    const spec = JSON.parse(j.spec) as CreateJob;
    return !liesWithin({ region: spec.region ?? null, countries: spec.countries ?? [] }, allowed);
  });
  if (outside.length > 0)
    throw new Beta9Error(
      "residency",
      `job ${outside.map((j) => j.id).join(", ")} may run outside ${allowed.text}; ` +
        `cancel it (b9 job cancel ID) or let it end, then change where ${whose} runs`,
    );
}

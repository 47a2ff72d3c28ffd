import type { Scope } from "@beta9/protocol";

export const ROLES = ["admin", "member", "viewer"] as const;
export type Role = (typeof ROLES)[number];

/** What each role may do: a member uses the pool (models, jobs) but changes nothing of it. */
export const ROLE_SCOPES: Record<Role, readonly Scope[]> = {
  admin: ["admin"],
  member: ["inference", "jobs", "read"],
  viewer: ["read"],
};

/** A group of the identity provider's, and the workspace and role its members get. */
export interface OidcRule {
  group: string;
  workspace: string;
  role: Role;
}

export interface OidcConfig {
  issuer: string;
  clientId: string;
  clientSecret?: string | undefined;
  /** A dotted path to the groups in the ID token or userinfo, e.g. "groups" or "realm_access.roles". */
  groupsClaim: string;
  /** Default deny: a person none of whose groups has a rule is refused. */
  rules: OidcRule[];
}

/** `GROUP=WORKSPACE:ROLE` (--oidc-rule); the group may itself hold "=" or ":" only before the last "=". */
export function parseRule(text: string): OidcRule {
  const eq = text.lastIndexOf("=");
  const colon = text.lastIndexOf(":");
  const role = text.slice(colon + 1) as Role;
  if (eq <= 0 || colon < eq + 2 || !ROLES.includes(role))
    throw new Error(`"${text}" is no rule: write GROUP=WORKSPACE:ROLE, ROLE one of ${ROLES.join(", ")}`);
  return { group: text.slice(0, eq), workspace: text.slice(eq + 1, colon), role };
}

/** The value at a dotted path of the claims ("realm_access.roles"), as a list of group names. */
export function groupsAt(claims: Record<string, unknown>, path: string): string[] {
  let v: unknown = claims;
  for (const part of path.split(".")) {
    if (v === null || typeof v !== "object") return [];
    v = (v as Record<string, unknown>)[part];
  }
  if (typeof v === "string") return [v];
  return Array.isArray(v) ? v.filter((g): g is string => typeof g === "string") : [];
}

/**
 * The workspace and role a person's groups give, or undefined (default deny). Several rules may match:
 * the first rule's workspace wins (the operator orders them), and within it the strongest role.
 */
export function grant(rules: readonly OidcRule[], groups: readonly string[]): OidcRule | undefined {
  const matching = rules.filter((r) => groups.includes(r.group));
  const first = matching[0];
  if (!first) return undefined;
  const strongest = matching
    .filter((r) => r.workspace === first.workspace)
    .sort((a, b) => ROLES.indexOf(a.role) - ROLES.indexOf(b.role))[0];
  return strongest ?? first;
}

import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Identity } from "./api.ts";

export const IdentityContext = createContext<Identity | undefined>(undefined);

/** Who is signed in; pages are only rendered inside a session. */
export function useIdentity(): Identity {
  return useContext(IdentityContext)!;
}

/** Operator-only actions (remove a machine, workspace limits) are hidden from others; the API refuses them anyway. */
export function useOperator(): boolean {
  return useContext(IdentityContext)?.operator ?? false;
}

export function canWrite(identity: Identity): boolean {
  return identity.scopes.includes("admin");
}

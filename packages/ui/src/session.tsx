import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Identity } from "./api.ts";

/** Who is signed in until the gateway has said: nobody who may change anything (the page is hidden meanwhile). */
export const PENDING: Identity = { kind: "key", name: "", workspace: "", scopes: [], operator: false };

export const IdentityContext = createContext<Identity>(PENDING);

/** Who is signed in; pages are only rendered inside a session. */
export function useIdentity(): Identity {
  return useContext(IdentityContext);
}

/** Operator-only actions (remove a machine, workspace limits) are hidden from others; the API refuses them anyway. */
export function useOperator(): boolean {
  return useContext(IdentityContext).operator;
}

export function canWrite(identity: Identity): boolean {
  return identity.scopes.includes("admin");
}

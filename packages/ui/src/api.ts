import {
  ApiError,
  ApiKeys,
  Audit,
  Deployments,
  Inference,
  Jobs,
  Machines,
  Replicas,
  Transport,
  Usage,
  Workspaces,
} from "@beta9/sdk/browser";

/** Who is signed in, as `GET /api/v1/auth/session` says. */
export interface Identity {
  kind: "key" | "sso";
  name: string;
  workspace: string;
  scopes: string[];
  operator: boolean;
}

export interface Session {
  identity: Identity;
  csrf_token: string;
  expires_at: string;
}

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
/** Called when the gateway no longer knows this browser's session. */
const signedOut = new Set<() => void>();
export function onSignedOut(listener: () => void): () => void {
  signedOut.add(listener);
  return () => signedOut.delete(listener);
}

/** The session's CSRF token, kept in memory only: a reload asks the gateway for it again. */
let csrfToken: string | undefined;

// The cookie session is the credential: same-origin fetches carry it; unsafe ones add the CSRF token.
const transport = new Transport({
  baseUrl: location.origin,
  fetch: async (input, init) => {
    const response = await fetch(input, { ...init, credentials: "same-origin" });
    // The session expired or was revoked while a page was open: back to the login page.
    if (response.status === 401 && !String(input).includes("/api/v1/auth/")) {
      forget();
      for (const listener of signedOut) listener();
    }
    return response;
  },
  headers: (call): Record<string, string> =>
    csrfToken && UNSAFE.has(call.method) ? { "x-csrf-token": csrfToken } : {},
});

/** The gateway's API, through the SDK's own resources (the same routes the CLI uses). */
export const api = {
  machines: new Machines(transport),
  deployments: new Deployments(transport),
  replicas: new Replicas(transport),
  keys: new ApiKeys(transport),
  workspaces: new Workspaces(transport),
  usage: new Usage(transport),
  jobs: new Jobs(transport),
  audit: new Audit(transport),
  // Streams start when the model is loaded; a cold start can take minutes.
  inference: new Inference(transport, 10 * 60_000),
};

/**
 * Whether this browser was signed in when last seen: no secret, only a hint that lets a page ask for
 * its data while the session is checked. A signed-out visit then makes one refused call, not five.
 */
const HINT = "b9:signed-in";
export function likelySignedIn(): boolean {
  return localStorage.getItem(HINT) === "1";
}

function remember(session: Session): Session {
  csrfToken = session.csrf_token;
  localStorage.setItem(HINT, "1");
  return session;
}

function forget(): void {
  csrfToken = undefined;
  localStorage.removeItem(HINT);
}

/** The current session, or undefined when there is none (the login page is shown then). */
export async function currentSession(): Promise<Session | undefined> {
  try {
    return remember(await transport.get<Session>("/api/v1/auth/session"));
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 404)) {
      forget();
      return undefined;
    }
    throw error;
  }
}

export async function signIn(apiKey: string): Promise<Session> {
  return remember(await transport.post<Session>("/api/v1/auth/session", { api_key: apiKey }));
}

export async function signOut(): Promise<void> {
  try {
    // Unsafe: it carries the CSRF token, so it is forgotten only after.
    await transport.delete<undefined>("/api/v1/auth/session");
  } finally {
    forget();
  }
}

export async function authConfig(): Promise<{ sso: boolean; issuer: string | null }> {
  try {
    return await transport.get("/api/v1/auth/config");
  } catch {
    return { sso: false, issuer: null };
  }
}

/** What to show a person for a failed call: the gateway's sentence, or what went wrong on the way. */
export function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

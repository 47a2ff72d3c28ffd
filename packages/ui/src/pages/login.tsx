import { useEffect, useState } from "preact/hooks";
import { authConfig, describe, type Session, signIn } from "../api.ts";
import { ErrorNote } from "../components.tsx";
import { BASE, navigate, useLocation } from "../router.tsx";

/** The sentences for the codes the gateway's SSO callback sends back here (?error=CODE). */
const SSO_ERRORS: Record<string, string> = {
  sso_refused:
    "Your identity provider signed you in, but none of your groups gives access to a workspace here. Ask the pool's operator to map one of your groups.",
  sso_failed:
    "The identity provider could not be reached or refused the sign-in. Try again in a moment; if it persists, tell the pool's operator.",
  sso_state: "That sign-in link expired or was already used. Start again with the button below.",
};

/** Only a dashboard page of this gateway may be returned to after signing in (never another site). */
export function safeReturn(value: string | null): string {
  const home = `${BASE}/`;
  if (!value?.startsWith("/") || value.startsWith("//") || value.includes("\\")) return home;
  // Resolved as the browser would ("/ui/../x" is "/x"), then checked.
  const url = new URL(value, location.origin);
  if (
    url.origin !== location.origin ||
    !url.pathname.startsWith(home) ||
    url.pathname.startsWith(`${BASE}/login`)
  )
    return home;
  return url.pathname + url.search + url.hash;
}

export function LoginPage(props: { onSignedIn: (s: Session) => void }) {
  const { query } = useLocation();
  const [key, setKey] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [sso, setSso] = useState(false);
  const code = query.get("error");
  const returnTo = safeReturn(query.get("return_to"));

  useEffect(() => {
    document.title = "Sign in · Beta9";
    void authConfig().then((c) => setSso(c.sso));
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const session = await signIn(key.trim());
      setKey("");
      navigate(returnTo, true);
      props.onSignedIn(session);
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="login" id="main">
      <h1>Sign in to Beta9</h1>
      {code && <ErrorNote error={SSO_ERRORS[code] ?? "Signing in failed. Try again."} />}
      {sso && (
        <p>
          <a class="button" href={`${BASE}/auth/sso?return_to=${encodeURIComponent(returnTo)}`}>
            Sign in with your organisation
          </a>
        </p>
      )}
      <form onSubmit={(e) => void submit(e)}>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autoComplete="off"
          placeholder="b9_…"
          required
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
        />
        <p class="hint">The key stays with the gateway: this browser keeps only a session cookie.</p>
        <ErrorNote error={error} />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}

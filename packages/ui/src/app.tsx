import type { ComponentType } from "preact";
import { useEffect, useState } from "preact/hooks";
import { currentSession, describe, likelySignedIn, onSignedOut, type Session, signOut } from "./api.ts";
import { AuditPage } from "./pages/audit.tsx";
import { DeploymentsPage } from "./pages/deployments.tsx";
import { JobPage, JobsPage } from "./pages/jobs.tsx";
import { KeysPage } from "./pages/keys.tsx";
import { LoginPage } from "./pages/login.tsx";
import { MachinePage } from "./pages/machine.tsx";
import { MachinesPage } from "./pages/machines.tsx";
import { OverviewPage } from "./pages/overview.tsx";
import { PlaygroundPage } from "./pages/playground.tsx";
import { UsagePage } from "./pages/usage.tsx";
import { Link, navigate, useLocation } from "./router.tsx";
import { IdentityContext, PENDING } from "./session.tsx";

const NAV: [string, string][] = [
  ["/", "Overview"],
  ["/machines", "Machines"],
  ["/deployments", "Deployments"],
  ["/playground", "Playground"],
  ["/keys", "Keys"],
  ["/usage", "Usage"],
  ["/jobs", "Jobs"],
  ["/audit", "Audit"],
];

/** Path → page; a segment after the list's path is the item's id. */
function route(path: string): { Page: ComponentType<{ id: string }>; id: string } | undefined {
  const [, first = "", ...rest] = path.split("/");
  const id = decodeURIComponent(rest.join("/"));
  const pages: Record<string, [ComponentType<{ id: string }>, ComponentType<{ id: string }>?]> = {
    "": [OverviewPage],
    machines: [MachinesPage, MachinePage],
    deployments: [DeploymentsPage],
    playground: [PlaygroundPage],
    keys: [KeysPage],
    usage: [UsagePage],
    jobs: [JobsPage, JobPage],
    audit: [AuditPage],
  };
  const entry = pages[first];
  if (!entry) return undefined;
  const Page = id ? entry[1] : entry[0];
  return Page && { Page, id };
}

export function App() {
  const { path } = useLocation();
  const [session, setSession] = useState<Session | null>();
  const [error, setError] = useState<string>();

  useEffect(() => onSignedOut(() => setSession(null)), []);
  useEffect(() => {
    currentSession().then(
      (s) => setSession(s ?? null),
      (e: unknown) => setError(describe(e)),
    );
  }, []);

  useEffect(() => {
    // Without a session every page leads to the login page, which comes back here after.
    if (session === null && path !== "/login")
      navigate(`/login?return_to=${encodeURIComponent(location.pathname + location.search)}`, true);
  }, [session, path]);

  if (error)
    return (
      <main class="center">
        <p class="error" role="alert">
          The gateway could not be reached: {error}
        </p>
      </main>
    );
  if (path === "/login" || session === null) return <LoginPage onSignedIn={setSession} />;
  // Signed out when last seen: nothing is asked for until the session is known.
  if (session === undefined && !likelySignedIn()) return <main class="center" aria-busy="true" />;

  const found = route(path);
  const logout = async () => {
    await signOut().catch(() => undefined);
    setSession(null);
  };
  return (
    <IdentityContext.Provider value={session?.identity ?? PENDING}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      {/* While the session is asked for, the page already loads its data, out of sight: one round trip less. */}
      <div class="layout" hidden={session === undefined} aria-busy={session === undefined}>
        <header class="top">
          <Link href="/" class="brand">
            Beta9
          </Link>
          <nav aria-label="Dashboard">
            <ul>
              {NAV.map(([href, label]) => {
                const current = href === "/" ? path === "/" : path === href || path.startsWith(`${href}/`);
                return (
                  <li key={href}>
                    <Link href={href} aria-current={current ? "page" : undefined}>
                      {label}
                    </Link>
                  </li>
                );
              })}
            </ul>
          </nav>
          <div class="who">
            <span title={`workspace ${session?.identity.workspace}`}>
              {session?.identity.name} · {session?.identity.workspace}
            </span>
            <button type="button" class="secondary small" onClick={() => void logout()}>
              Sign out
            </button>
          </div>
        </header>
        <main id="main">
          {found ? (
            <found.Page key={path} id={found.id} />
          ) : (
            <>
              <h1>Not found</h1>
              <p>
                No page at this address. <Link href="/">Go to the overview</Link>.
              </p>
            </>
          )}
        </main>
      </div>
    </IdentityContext.Provider>
  );
}

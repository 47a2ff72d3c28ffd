import { MachineStatuses } from "@beta9/protocol";
import { useEffect } from "preact/hooks";
import { api } from "../api.ts";
import { ErrorNote, num, Page, printable, Stat, StatusBadge, TableBox, usePoll } from "../components.tsx";
import { Link } from "../router.tsx";
import { PENDING, useIdentity } from "../session.tsx";

/** The overview refreshes itself: a person watching the pool sees changes within this. */
const LIVE_MS = 5_000;
const SHOWN = "b9:overview-shown";

export function OverviewPage() {
  const pool = usePoll(
    async (signal) => {
      const since = new Date(Date.now() - 60_000);
      const [machines, deployments, replicas, lastMinute] = await Promise.all([
        api.machines.list({}, { signal }),
        api.deployments.list({}, { signal }),
        api.replicas.list({ signal }),
        api.usage.get({ since, group_by: "model" }, { signal }),
      ]);
      return {
        machines: machines.machines,
        deployments: deployments.deployments,
        replicas: replicas.replicas,
        lastMinute,
      };
    },
    [],
    LIVE_MS,
  );
  const d = pool.data;
  // bench/ui reads this mark: the first load ends when the live figures are on screen (the page is
  // shown once the session is known).
  const signedIn = useIdentity() !== PENDING;
  useEffect(() => {
    if (d && signedIn && performance.getEntriesByName(SHOWN).length === 0) performance.mark(SHOWN);
  }, [d, signedIn]);
  const byStatus = new Map<string, number>();
  const byVendor = new Map<string, number>();
  for (const m of d?.machines ?? []) {
    byStatus.set(m.status, (byStatus.get(m.status) ?? 0) + 1);
    for (const g of m.hardware.gpus) byVendor.set(g.vendor, (byVendor.get(g.vendor) ?? 0) + 1);
  }
  const minute = (d?.lastMinute.groups ?? []).reduce(
    (t, g) => ({
      requests: t.requests + g.requests,
      tokens: t.tokens + g.prompt_tokens + g.completion_tokens,
      errors: t.errors + g.errors,
    }),
    { requests: 0, tokens: 0, errors: 0 },
  );
  const served = new Map<string, number>();
  for (const r of d?.replicas ?? []) served.set(r.deployment, (served.get(r.deployment) ?? 0) + 1);

  return (
    <Page title="Overview">
      <ErrorNote error={pool.error} />
      <section aria-labelledby="traffic" class="panel">
        <h2 id="traffic">Last minute</h2>
        <div class="stats">
          <Stat label="requests per minute" value={d ? num(minute.requests) : "…"} />
          <Stat label="tokens per minute" value={d ? num(minute.tokens) : "…"} />
          <Stat label="errors" value={d ? num(minute.errors) : "…"} />
          <Stat label="machines" value={d ? num(d.machines.length) : "…"} />
        </div>
      </section>
      <div class="grid2">
        <section aria-labelledby="by-status" class="panel">
          <h2 id="by-status">Machines by status</h2>
          <ul class="counts">
            {MachineStatuses.filter((s) => byStatus.has(s)).map((s) => (
              <li key={s}>
                <StatusBadge status={s} /> <strong>{byStatus.get(s)}</strong>
              </li>
            ))}
            {d && d.machines.length === 0 && (
              <li>No machine has joined yet: create a join token with b9 token create.</li>
            )}
          </ul>
        </section>
        <section aria-labelledby="by-vendor" class="panel">
          <h2 id="by-vendor">GPUs by vendor</h2>
          <ul class="counts">
            {[...byVendor].map(([vendor, n]) => (
              <li key={vendor}>
                {printable(vendor)} <strong>{n}</strong>
              </li>
            ))}
            {d && byVendor.size === 0 && <li>No GPU in the pool: models run on CPUs.</li>}
          </ul>
        </section>
      </div>
      <section aria-labelledby="models" class="panel">
        <h2 id="models">Models</h2>
        <TableBox label="Models">
          <thead>
            <tr>
              <th scope="col">Deployment</th>
              <th scope="col">Replicas running</th>
              <th scope="col">Requests (last minute)</th>
            </tr>
          </thead>
          <tbody>
            {(d?.deployments ?? []).map((dep) => (
              <tr key={dep.name}>
                <td>
                  <Link href="/deployments">{printable(dep.name)}</Link>
                </td>
                <td>{served.get(dep.name) ?? 0}</td>
                <td>{d?.lastMinute.groups.find((g) => g.group === dep.name)?.requests ?? 0}</td>
              </tr>
            ))}
          </tbody>
        </TableBox>
        {d && d.deployments.length === 0 && <p>No deployment yet.</p>}
      </section>
    </Page>
  );
}

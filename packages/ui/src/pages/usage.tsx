import type { UsageGroup, UsageGroupBy } from "@beta9/protocol";
import { useMemo, useState } from "preact/hooks";
import { api } from "../api.ts";
import { type Series, TimeChart } from "../chart.tsx";
import { ErrorNote, num, Page, printable, TableBox, usePoll } from "../components.tsx";
import { useOperator } from "../session.tsx";

/** Each range is read as this many equal slices, one point each on the charts. */
const RANGES: Record<string, { label: string; ms: number; slices: number }> = {
  "1h": { label: "Last hour", ms: 3_600_000, slices: 12 },
  "24h": { label: "Last 24 hours", ms: 86_400_000, slices: 24 },
  "7d": { label: "Last 7 days", ms: 7 * 86_400_000, slices: 14 },
  "30d": { label: "Last 30 days", ms: 30 * 86_400_000, slices: 30 },
};
const GROUPS: UsageGroupBy[] = ["model", "key", "machine"];

const total = (groups: UsageGroup[], pick: (g: UsageGroup) => number | null | undefined): number | null => {
  let sum: number | null = null;
  for (const g of groups) {
    const v = pick(g);
    if (v !== null && v !== undefined) sum = (sum ?? 0) + v;
  }
  return sum;
};

export function UsagePage() {
  // Every workspace's usage side by side is the operator's view only.
  const groups = useOperator() ? [...GROUPS, "workspace" as const] : GROUPS;
  const [range, setRange] = useState("24h");
  const [groupBy, setGroupBy] = useState<UsageGroupBy>("model");
  const spec = RANGES[range] ?? RANGES["24h"]!;
  const usage = usePoll(
    async (signal) => {
      const until = Date.now();
      const since = until - spec.ms;
      const step = spec.ms / spec.slices;
      const slices = await Promise.all(
        Array.from({ length: spec.slices }, (_, i) =>
          api.usage.get(
            { since: new Date(since + i * step), until: new Date(since + (i + 1) * step) },
            { signal },
          ),
        ),
      );
      const table = await api.usage.get(
        { since: new Date(since), until: new Date(until), group_by: groupBy },
        { signal },
      );
      return { step, since, slices, table };
    },
    [range, groupBy],
    30_000,
  );
  const charts = useMemo(() => {
    const d = usage.data;
    if (!d) return undefined;
    const times = d.slices.map((_, i) => (d.since + (i + 1) * d.step) / 1000);
    // Counts are 0 in a slice with no request; energy stays null where nothing was measured.
    const of = (pick: (g: UsageGroup) => number | null | undefined) =>
      d.slices.map((s) => total(s.groups, pick));
    const count = (pick: (g: UsageGroup) => number) => d.slices.map((s) => total(s.groups, pick) ?? 0);
    const tokens: Series[] = [
      { label: "prompt tokens", values: count((g) => g.prompt_tokens), color: "#1d4ed8" },
      { label: "completion tokens", values: count((g) => g.completion_tokens), color: "#b45309" },
    ];
    const requests: Series[] = [
      { label: "requests", values: count((g) => g.requests), color: "#047857" },
      { label: "errors", values: count((g) => g.errors), color: "#b91c1c" },
    ];
    const energy: Series[] = [
      { label: "energy (Wh)", values: of((g) => g.energy_wh), color: "#7c3aed" },
      { label: "gCO2e", values: of((g) => g.co2e_g), color: "#4b5563" },
    ];
    return { times, tokens, requests, energy };
  }, [usage.data]);

  return (
    <Page title="Usage">
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Time range
          <select value={range} onChange={(e) => setRange(e.currentTarget.value)}>
            {Object.entries(RANGES).map(([k, r]) => (
              <option key={k} value={k}>
                {r.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Group by
          <select value={groupBy} onChange={(e) => setGroupBy(e.currentTarget.value as UsageGroupBy)}>
            {groups.map((g) => (
              <option key={g}>{g}</option>
            ))}
          </select>
        </label>
      </form>
      <ErrorNote error={usage.error} />
      {charts && (
        <div class="charts">
          <TimeChart title="Tokens" times={charts.times} series={charts.tokens} />
          <TimeChart title="Requests" times={charts.times} series={charts.requests} />
          <TimeChart title="Energy and emissions" times={charts.times} series={charts.energy} />
        </div>
      )}
      <TableBox label={`Usage by ${groupBy}`}>
        <thead>
          <tr>
            <th scope="col">{groupBy}</th>
            <th scope="col">Requests</th>
            <th scope="col">Prompt tokens</th>
            <th scope="col">Completion tokens</th>
            <th scope="col">Errors</th>
            <th scope="col">p95 latency</th>
            <th scope="col">Energy (Wh)</th>
            <th scope="col">gCO2e</th>
          </tr>
        </thead>
        <tbody>
          {(usage.data?.table.groups ?? []).map((g) => (
            <tr key={g.group}>
              <td>{printable(g.key_name ?? g.machine_name ?? g.workspace_name ?? (g.group || "(none)"))}</td>
              <td>{num(g.requests)}</td>
              <td>{num(g.prompt_tokens)}</td>
              <td>{num(g.completion_tokens)}</td>
              <td>{num(g.errors)}</td>
              <td>{num(g.p95_latency_ms)} ms</td>
              <td>{num(g.energy_wh, 3)}</td>
              <td>{num(g.co2e_g, 3)}</td>
            </tr>
          ))}
        </tbody>
      </TableBox>
      {usage.data?.table.groups.length === 0 && <p>No request in this range.</p>}
    </Page>
  );
}

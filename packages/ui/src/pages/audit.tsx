import { useState } from "preact/hooks";
import { api } from "../api.ts";
import { ErrorNote, Page, printable, TableBox, usePoll, when } from "../components.tsx";

const FILTERS = ["action", "actor", "resource"] as const;
type Filter = Record<(typeof FILTERS)[number] | "since", string>;

export function AuditPage() {
  const [draft, setDraft] = useState<Filter>({ action: "", actor: "", resource: "", since: "" });
  const [applied, setApplied] = useState(draft);
  const events = usePoll(
    async (signal) => {
      const f = Object.fromEntries(Object.entries(applied).filter(([, v]) => v.trim() !== ""));
      const since = f.since ? new Date(f.since) : undefined;
      return api.audit.list({ ...f, ...(since ? { since } : {}), limit: 200 }, { signal });
    },
    [applied],
    10_000,
  );
  return (
    <Page title="Audit">
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(draft);
        }}
      >
        {FILTERS.map((k) => (
          <label key={k}>
            {k[0]!.toUpperCase() + k.slice(1)}
            <input value={draft[k]} onInput={(e) => setDraft({ ...draft, [k]: e.currentTarget.value })} />
          </label>
        ))}
        <label>
          Since
          <input
            type="datetime-local"
            value={draft.since}
            onInput={(e) => setDraft({ ...draft, since: e.currentTarget.value })}
          />
        </label>
        <button type="submit">Filter</button>
      </form>
      <ErrorNote error={events.error} />
      <TableBox label="Audit events">
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Action</th>
            <th scope="col">Outcome</th>
            <th scope="col">Actor</th>
            <th scope="col">Resource</th>
            <th scope="col">Workspace</th>
          </tr>
        </thead>
        <tbody>
          {(events.data?.events ?? [])
            .slice()
            .reverse()
            .map((e) => (
              <tr key={`${e.chain}-${e.seq}`}>
                <td>{when(e.at)}</td>
                <td>{printable(e.action)}</td>
                <td>{e.outcome}</td>
                <td>
                  {e.actor.type}
                  {e.actor.id && <div class="sub">{printable(e.actor.id)}</div>}
                </td>
                <td class="break">{e.resource ? printable(e.resource) : "—"}</td>
                <td>{e.workspace ? printable(e.workspace) : "—"}</td>
              </tr>
            ))}
        </tbody>
      </TableBox>
      {events.data?.events.length === 0 && <p>No event matches.</p>}
    </Page>
  );
}

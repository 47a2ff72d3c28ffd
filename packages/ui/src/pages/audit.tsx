import type { AuditEventView } from "@beta9/protocol";
import type { AuditFilter } from "@beta9/sdk/browser";
import { useState } from "preact/hooks";
import { api } from "../api.ts";
import { ErrorNote, Page, printable, TableBox, usePoll, when } from "../components.tsx";

/** Pages of this many events are read while looking for the newest. */
const PAGE = 500;
/** How far back the newest events are looked for when no time is given (older ones: filter by since). */
const DEFAULT_SPAN_MS = 7 * 86_400_000;

/**
 * The newest `count` events that match, newest first. The API lists from oldest on, so the pages are
 * read to the end (a few at most over the default week) and the last ones kept.
 */
export async function newestEvents(
  filter: AuditFilter,
  count: number,
  signal: AbortSignal,
): Promise<AuditEventView[]> {
  let kept: AuditEventView[] = [];
  let after: string | undefined;
  const since = filter.since ?? new Date(Date.now() - DEFAULT_SPAN_MS);
  for (;;) {
    const page = await api.audit.list(
      { ...filter, since, limit: PAGE, ...(after ? { after } : {}) },
      { signal },
    );
    kept = [...kept, ...page.events].slice(-count);
    if (page.events.length < PAGE || !page.next) return kept.reverse();
    after = page.next;
  }
}

const FILTERS = ["action", "actor", "resource"] as const;
type Filter = Record<(typeof FILTERS)[number] | "since", string>;

export function AuditPage() {
  const [draft, setDraft] = useState<Filter>({ action: "", actor: "", resource: "", since: "" });
  const [applied, setApplied] = useState(draft);
  const events = usePoll(
    async (signal) => {
      const f = Object.fromEntries(Object.entries(applied).filter(([, v]) => v.trim() !== ""));
      const since = f.since ? new Date(f.since) : undefined;
      return newestEvents({ ...f, ...(since ? { since } : {}) }, 200, signal);
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
          {(events.data ?? []).map((e) => (
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
      {events.data?.length === 0 && <p>No event matches.</p>}
    </Page>
  );
}

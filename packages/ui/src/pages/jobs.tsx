import type { JobLogLine } from "@beta9/protocol";
import { useEffect, useState } from "preact/hooks";
import { api, describe } from "../api.ts";
import {
  bytes,
  ConfirmButton,
  ErrorNote,
  Page,
  printable,
  StatusBadge,
  TableBox,
  usePoll,
  when,
} from "../components.tsx";
import { Link } from "../router.tsx";

const command = (argv: readonly string[] | undefined) => printable((argv ?? []).join(" "));

export function JobsPage() {
  const list = usePoll((signal) => api.jobs.list({ limit: 100 }, { signal }), [], 5_000);
  return (
    <Page title="Jobs">
      <ErrorNote error={list.error} />
      <TableBox label="Jobs">
        <thead>
          <tr>
            <th scope="col">Job</th>
            <th scope="col">State</th>
            <th scope="col">Command</th>
            <th scope="col">Machine</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {(list.data?.jobs ?? []).map((j) => (
            <tr key={j.id}>
              <td>
                <Link href={`/jobs/${encodeURIComponent(j.id)}`}>{printable(j.id)}</Link>
              </td>
              <td>
                <StatusBadge status={j.state} />
              </td>
              <td class="break">
                <code>{command(j.spec.command)}</code>
              </td>
              <td>{j.machine_id ? printable(j.machine_id) : "—"}</td>
              <td>{when(j.created_at)}</td>
            </tr>
          ))}
        </tbody>
      </TableBox>
      {list.data?.jobs.length === 0 && <p>No job yet: submit one with b9 job run.</p>}
    </Page>
  );
}

/** The job's output, followed live until it ends. */
function Logs(props: { id: string }) {
  const [lines, setLines] = useState<JobLogLine[]>([]);
  const [error, setError] = useState<string>();
  useEffect(() => {
    const stream = api.jobs.logs(props.id, { follow: true });
    void (async () => {
      try {
        for await (const line of stream) setLines((ls) => [...ls, line]);
      } catch (err) {
        if (!stream.aborted) setError(describe(err));
      }
    })();
    return () => stream.abort();
  }, [props.id]);
  return (
    <section class="panel" aria-labelledby="logs">
      <h2 id="logs">Logs</h2>
      <ErrorNote error={error} />
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: long output scrolls; the keyboard must reach it */}
      <pre class="logs" tabIndex={0} data-testid="job-logs">
        {lines.map((l) => (
          <span key={l.seq} class={l.stream}>
            {printable(l.line)}
            {"\n"}
          </span>
        ))}
      </pre>
      {lines.length === 0 && !error && <p>No output yet.</p>}
    </section>
  );
}

/** The files the job left, each a download through the same API the CLI uses (b9 job outputs). */
function Outputs(props: { id: string; ended: boolean }) {
  const outputs = usePoll((signal) => api.jobs.outputs(props.id, { signal }), [props.id, props.ended]);
  const href = (name: string) =>
    `/api/v1/jobs/${encodeURIComponent(props.id)}/outputs/${name.split("/").map(encodeURIComponent).join("/")}`;
  return (
    <section class="panel" aria-labelledby="outputs">
      <h2 id="outputs">Outputs</h2>
      <ErrorNote error={outputs.error} />
      <ul class="events">
        {(outputs.data?.outputs ?? []).map((o) => (
          <li key={o.name}>
            <a href={href(o.name)} download>
              {printable(o.name)}
            </a>{" "}
            <span class="sub">
              {bytes(o.size)} · sha256 {o.sha256.slice(0, 12)}…
            </span>
          </li>
        ))}
        {outputs.data?.outputs.length === 0 && <li>None{props.ended ? "" : " yet"}.</li>}
      </ul>
    </section>
  );
}

export function JobPage(props: { id: string }) {
  const job = usePoll((signal) => api.jobs.get(props.id, { signal }), [props.id], 3_000);
  const j = job.data;
  return (
    <Page
      title={`Job ${printable(props.id)}`}
      actions={
        j &&
        !j.ended && (
          <ConfirmButton
            label="Cancel job"
            danger
            question="Cancel this job? A running command gets SIGTERM, then SIGKILL."
            confirm="Cancel job"
            onConfirm={async () => {
              await api.jobs.cancel(j.id);
              job.reload();
            }}
          />
        )
      }
    >
      <ErrorNote error={job.error} />
      {j && (
        <section class="panel" aria-labelledby="job-facts">
          <h2 id="job-facts">
            <StatusBadge status={j.state} />
            <span class="visually-hidden"> Facts</span>
          </h2>
          <dl class="facts">
            <dt>Command</dt>
            <dd>
              <code>{command(j.spec.command)}</code>
            </dd>
            <dt>Reason</dt>
            <dd>{j.reason ? printable(j.reason) : "—"}</dd>
            <dt>Machine</dt>
            <dd>{j.machine_id ? printable(j.machine_id) : "—"}</dd>
            <dt>Exit code</dt>
            <dd>{j.exit_code ?? "—"}</dd>
            <dt>Attempt</dt>
            <dd>
              {j.attempt} of {j.max_retries + 1}
            </dd>
            <dt>Started</dt>
            <dd>{when(j.started_at)}</dd>
            <dt>Finished</dt>
            <dd>{when(j.finished_at)}</dd>
          </dl>
        </section>
      )}
      <Logs id={props.id} />
      {j && <Outputs id={j.id} ended={j.ended} />}
    </Page>
  );
}

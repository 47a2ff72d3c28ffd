import { api } from "../api.ts";
import {
  bytes,
  ConfirmButton,
  ErrorNote,
  num,
  Page,
  printable,
  StatusBadge,
  TableBox,
  usePoll,
  when,
} from "../components.tsx";
import { navigate } from "../router.tsx";
import { canWrite, useIdentity } from "../session.tsx";
import { newestEvents } from "./audit.tsx";
import { gpuSummary } from "./machines.tsx";

export function MachinePage(props: { id: string }) {
  const identity = useIdentity();
  const machine = usePoll((signal) => api.machines.get(props.id, { signal }), [props.id], 5_000);
  // Its state changes as the audit log recorded them (cordon, drain, join …), newest first.
  const history = usePoll(
    (signal) => newestEvents({ resource: `machine:${props.id}` }, 50, signal),
    [props.id],
    10_000,
  );
  const m = machine.data;
  const title = m ? printable(m.name) : printable(props.id);
  const act = (what: () => Promise<unknown>) => async () => {
    await what();
    machine.reload();
    history.reload();
  };

  return (
    <Page
      title={title}
      actions={
        m &&
        canWrite(identity) && (
          <>
            {m.cordoned ? (
              <ConfirmButton
                label="Uncordon"
                question={`Let ${m.name} take new work again?`}
                confirm="Uncordon"
                onConfirm={act(() => api.machines.uncordon(m.id))}
              />
            ) : (
              <ConfirmButton
                label="Cordon"
                question={`Stop placing new work on ${m.name}? What runs there keeps running.`}
                confirm="Cordon"
                onConfirm={act(() => api.machines.cordon(m.id))}
              />
            )}
            {!m.draining && (
              <ConfirmButton
                label="Drain"
                question={`Drain ${m.name}? It takes no new work, answers in flight finish, and its models move elsewhere.`}
                confirm="Drain"
                onConfirm={act(() => api.machines.drain(m.id))}
              />
            )}
            {identity.operator && (
              <ConfirmButton
                label="Remove"
                danger
                question={`Remove ${m.name} from the pool? Its credential stops working; it must join again with a new token.`}
                confirm="Remove"
                onConfirm={async () => {
                  await api.machines.remove(m.id);
                  navigate("/machines");
                }}
              />
            )}
          </>
        )
      }
    >
      <ErrorNote error={machine.error} />
      {m && (
        <>
          <section class="panel" aria-labelledby="facts">
            <h2 id="facts">
              <StatusBadge status={m.status} />
              <span class="visually-hidden"> Facts</span>
            </h2>
            <dl class="facts">
              <dt>Id</dt>
              <dd>{printable(m.id)}</dd>
              <dt>Hostname</dt>
              <dd>{printable(m.hostname)}</dd>
              <dt>Pool</dt>
              <dd>{printable(m.pool)}</dd>
              <dt>Country</dt>
              <dd>{m.country ?? "not set"}</dd>
              <dt>Agent version</dt>
              <dd>{printable(m.agent_version)}</dd>
              <dt>CPU</dt>
              <dd>
                {printable(m.hardware.cpu_model)} · {m.hardware.cpu_cores} cores ·{" "}
                {bytes(m.hardware.memory_total_bytes)}
              </dd>
              <dt>GPUs</dt>
              <dd>{printable(gpuSummary(m))}</dd>
              <dt>CPU use</dt>
              <dd>{m.usage ? `${num(m.usage.cpu_percent)} %` : "—"}</dd>
              <dt>Running jobs</dt>
              <dd>{m.running_jobs}</dd>
              <dt>Requests in flight</dt>
              <dd>{m.in_flight ?? 0}</dd>
              {m.drain_waiting_for && (
                <>
                  <dt>Drain waits for</dt>
                  <dd>{printable(m.drain_waiting_for)}</dd>
                </>
              )}
              <dt>Joined</dt>
              <dd>{when(m.joined_at)}</dd>
              <dt>Last heartbeat</dt>
              <dd>{when(m.last_heartbeat_at)}</dd>
            </dl>
          </section>
          <section class="panel" aria-labelledby="serves">
            <h2 id="serves">Serves</h2>
            <TableBox label="Models on this machine">
              <thead>
                <tr>
                  <th scope="col">Model</th>
                  <th scope="col">Engine</th>
                  <th scope="col">State</th>
                  <th scope="col">Memory</th>
                </tr>
              </thead>
              <tbody>
                {(m.inference?.models ?? []).map((s) => (
                  <tr key={s.name}>
                    <td>{printable(s.name)}</td>
                    <td>{printable(s.engine)}</td>
                    <td>
                      {printable(s.state)}
                      {s.error && <div class="sub">{printable(s.error)}</div>}
                    </td>
                    <td>{bytes(s.memory_bytes)}</td>
                  </tr>
                ))}
              </tbody>
            </TableBox>
          </section>
        </>
      )}
      <section class="panel" aria-labelledby="changes">
        <h2 id="changes">Changes</h2>
        <ErrorNote error={history.error} />
        <ul class="events">
          {(history.data ?? []).map((e) => (
            <li key={`${e.chain}-${e.seq}`}>
              <time dateTime={e.at}>{when(e.at)}</time> {printable(e.action)}{" "}
              <span class="sub">{e.outcome}</span>
            </li>
          ))}
          {history.data?.length === 0 && <li>No recorded change.</li>}
        </ul>
      </section>
    </Page>
  );
}

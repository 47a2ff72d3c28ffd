import type { ApiKeyView, Scope, WorkspaceView } from "@beta9/protocol";
import { useState } from "preact/hooks";
import { api, describe } from "../api.ts";
import {
  ConfirmButton,
  ErrorNote,
  LimitsButton,
  limitOf,
  num,
  Page,
  printable,
  TableBox,
  usePoll,
  when,
} from "../components.tsx";
import { canWrite, useIdentity, useOperator } from "../session.tsx";

const SCOPES: Scope[] = ["inference", "read", "jobs", "admin"];

function CreateKey(props: { onCreated: (key: ApiKeyView) => void }) {
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<Scope[]>(["inference"]);
  const [rpm, setRpm] = useState("");
  const [tpm, setTpm] = useState("");
  const [error, setError] = useState<string>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    try {
      const key = await api.keys.create({
        name: name.trim(),
        scopes,
        rpm_limit: limitOf(rpm),
        tpm_limit: limitOf(tpm),
      });
      setName("");
      props.onCreated(key);
    } catch (err) {
      setError(describe(err));
    }
  };
  return (
    <form class="panel form-grid" onSubmit={(e) => void submit(e)} aria-labelledby="create-key">
      <h2 id="create-key">Create a key</h2>
      <label>
        Name{" "}
        <input
          required
          pattern="[a-zA-Z0-9][a-zA-Z0-9._\-]{0,62}"
          value={name}
          onInput={(e) => setName(e.currentTarget.value)}
        />
      </label>
      <fieldset>
        <legend>Scopes</legend>
        {SCOPES.map((s) => (
          <label key={s} class="check">
            <input
              type="checkbox"
              checked={scopes.includes(s)}
              onChange={(e) =>
                setScopes(e.currentTarget.checked ? [...scopes, s] : scopes.filter((x) => x !== s))
              }
            />{" "}
            {s}
          </label>
        ))}
      </fieldset>
      <label>
        Requests per minute{" "}
        <input
          type="number"
          min="1"
          placeholder="no limit"
          value={rpm}
          onInput={(e) => setRpm(e.currentTarget.value)}
        />
      </label>
      <label>
        Tokens per minute{" "}
        <input
          type="number"
          min="1"
          placeholder="no limit"
          value={tpm}
          onInput={(e) => setTpm(e.currentTarget.value)}
        />
      </label>
      <ErrorNote error={error} />
      <div class="wide">
        <button type="submit" disabled={scopes.length === 0}>
          Create key
        </button>
      </div>
    </form>
  );
}

function Workspaces(props: { workspaces: WorkspaceView[]; onChanged: () => void }) {
  return (
    <section class="panel" aria-labelledby="workspaces">
      <h2 id="workspaces">Workspaces</h2>
      <TableBox label="Workspaces">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Requests/min</th>
            <th scope="col">Tokens/min</th>
            <th scope="col">Jobs at once</th>
            <th scope="col">GPU-hours/day</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {props.workspaces.map((w) => (
            <tr key={w.id}>
              <td>
                {printable(w.name)}
                {w.operator && <div class="sub">operator</div>}
              </td>
              <td>{w.rpm_limit === null ? "no limit" : num(w.rpm_limit)}</td>
              <td>{w.tpm_limit === null ? "no limit" : num(w.tpm_limit)}</td>
              <td>{w.max_jobs === null ? "no limit" : num(w.max_jobs)}</td>
              <td>{w.gpu_hours_per_day === null ? "no limit" : num(w.gpu_hours_per_day, 2)}</td>
              <td>
                <LimitsButton
                  label={`Limits of workspace ${w.name}`}
                  fields={{
                    rpm_limit: { label: "Requests per minute", value: w.rpm_limit },
                    tpm_limit: { label: "Tokens per minute", value: w.tpm_limit },
                    max_jobs: { label: "Jobs at once", value: w.max_jobs },
                    gpu_hours_per_day: { label: "GPU-hours per day", value: w.gpu_hours_per_day },
                  }}
                  save={async (limits) => {
                    await api.workspaces.setLimits(w.name, limits);
                    props.onChanged();
                  }}
                />
              </td>
            </tr>
          ))}
        </tbody>
      </TableBox>
    </section>
  );
}

export function KeysPage() {
  const identity = useIdentity();
  const operator = useOperator();
  const keys = usePoll((signal) => api.keys.list({}, { signal }), []);
  const workspaces = usePoll(
    (signal) => (operator ? api.workspaces.list({ signal }) : Promise.resolve({ workspaces: [] })),
    [operator],
  );
  const [created, setCreated] = useState<ApiKeyView>();
  const writer = canWrite(identity);
  return (
    <Page title="Keys">
      <ErrorNote error={keys.error} />
      {created?.key && (
        <section class="panel secret" aria-labelledby="new-key">
          <h2 id="new-key">Key {printable(created.name)} created</h2>
          <p>Copy it now: it is shown only once, and the gateway keeps only its hash.</p>
          <output data-testid="new-key">{created.key}</output>
          <div class="actions">
            <button
              type="button"
              class="secondary"
              onClick={() => void navigator.clipboard?.writeText(created.key ?? "")}
            >
              Copy
            </button>
            <button type="button" class="secondary" onClick={() => setCreated(undefined)}>
              Done
            </button>
          </div>
        </section>
      )}
      <TableBox label="API keys">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Prefix</th>
            <th scope="col">Scopes</th>
            <th scope="col">Limits</th>
            <th scope="col">Last used</th>
            <th scope="col">State</th>
            {writer && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody>
          {(keys.data?.keys ?? []).map((k) => (
            <tr key={k.id}>
              <td>{printable(k.name)}</td>
              <td>
                <code>{printable(k.prefix)}…</code>
              </td>
              <td>{k.scopes.join(", ")}</td>
              <td>
                {k.rpm_limit === null ? "—" : `${num(k.rpm_limit)} req/min`}
                {k.tpm_limit !== null && <div class="sub">{num(k.tpm_limit)} tokens/min</div>}
              </td>
              <td>{when(k.last_used_at)}</td>
              <td>{k.revoked ? "revoked" : "active"}</td>
              {writer && (
                <td class="row-actions">
                  <div>
                    {!k.revoked && (
                      <LimitsButton
                        label={`Limits of ${k.name}`}
                        fields={{
                          rpm_limit: { label: "Requests per minute", value: k.rpm_limit },
                          tpm_limit: { label: "Tokens per minute", value: k.tpm_limit },
                        }}
                        save={async (limits) => {
                          await api.keys.setLimits(k.id, limits);
                          keys.reload();
                        }}
                      />
                    )}
                    {!k.revoked && (
                      <ConfirmButton
                        label="Revoke"
                        name={`Revoke ${k.name}`}
                        danger
                        question={`Revoke ${k.name}? Every program using it is refused from now on.`}
                        confirm="Revoke"
                        onConfirm={async () => {
                          await api.keys.revoke(k.id);
                          keys.reload();
                        }}
                      />
                    )}
                  </div>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </TableBox>
      {writer && (
        <CreateKey
          onCreated={(k) => {
            setCreated(k);
            keys.reload();
          }}
        />
      )}
      {operator && (
        <>
          <ErrorNote error={workspaces.error} />
          <Workspaces workspaces={workspaces.data?.workspaces ?? []} onChanged={workspaces.reload} />
        </>
      )}
    </Page>
  );
}

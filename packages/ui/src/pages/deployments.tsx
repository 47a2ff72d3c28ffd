import type { CreateDeployment, DeploymentView, GpuRequirement } from "@beta9/protocol";
import { useState } from "preact/hooks";
import { api, describe } from "../api.ts";
import { ConfirmButton, ErrorNote, Page, printable, TableBox, usePoll } from "../components.tsx";
import { canWrite, useIdentity } from "../session.tsx";

const GPUS: GpuRequirement[] = ["any", "none", "nvidia", "amd", "apple", "intel"];

/** The spec a deployment was made with, to make it again with other replica counts. */
function specOf(d: DeploymentView): CreateDeployment {
  return {
    name: d.name,
    source: d.source,
    ...(d.sha256 ? { sha256: d.sha256 } : {}),
    ...(d.engine ? { engine: d.engine } : {}),
    min_replicas: d.min_replicas,
    max_replicas: d.max_replicas,
    idle_seconds: d.idle_seconds,
    pool: d.pool,
    gpu: d.gpu,
    ...(d.min_vram_bytes !== null ? { min_vram_bytes: d.min_vram_bytes } : {}),
    ...(d.countries.length ? { countries: d.countries } : {}),
    ...(d.region ? { region: d.region } : {}),
    ...(d.prefer ? { prefer: d.prefer } : {}),
    ...(d.context_size !== null ? { context_size: d.context_size } : {}),
  };
}

function CreateForm(props: { onCreated: () => void }) {
  const [form, setForm] = useState({
    name: "",
    source: "",
    min: "0",
    max: "1",
    idle: "300",
    gpu: "any",
    pool: "external",
    countries: "",
    region: "",
    prefer: "",
  });
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const field = (key: keyof typeof form) => ({
    value: form[key],
    onInput: (e: Event) => setForm({ ...form, [key]: (e.currentTarget as HTMLInputElement).value }),
  });
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    const countries = form.countries
      .split(/[\s,]+/)
      .filter(Boolean)
      .map((c) => c.toUpperCase());
    try {
      await api.deployments.create({
        name: form.name.trim(),
        source: form.source.trim(),
        min_replicas: Number(form.min),
        max_replicas: Number(form.max),
        idle_seconds: Number(form.idle),
        gpu: form.gpu as GpuRequirement,
        pool: form.pool.trim(),
        ...(countries.length ? { countries } : {}),
        ...(form.region === "eu" ? { region: "eu" as const } : {}),
        ...(form.prefer === "low-carbon" ? { prefer: "low-carbon" as const } : {}),
      });
      setForm({ ...form, name: "", source: "" });
      props.onCreated();
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="panel form-grid" onSubmit={(e) => void submit(e)} aria-labelledby="create-dep">
      <h2 id="create-dep">Deploy a model</h2>
      <label>
        Name <input required placeholder="llama3.2:1b" {...field("name")} />
      </label>
      <label class="wide">
        Source{" "}
        <input
          required
          placeholder="hf:ORG/REPO/FILE.gguf, https://…, ollama:NAME:TAG"
          {...field("source")}
        />
      </label>
      <label>
        Min replicas <input type="number" min="0" max="64" {...field("min")} />
      </label>
      <label>
        Max replicas <input type="number" min="1" max="64" {...field("max")} />
      </label>
      <label>
        Idle seconds <input type="number" min="10" {...field("idle")} />
      </label>
      <label>
        GPU
        <select {...field("gpu")}>
          {GPUS.map((g) => (
            <option key={g}>{g}</option>
          ))}
        </select>
      </label>
      <label>
        Pool <input required {...field("pool")} />
      </label>
      <label>
        Countries <input placeholder="DE, FR" {...field("countries")} />
      </label>
      <label>
        Region
        <select {...field("region")}>
          <option value="">anywhere</option>
          <option value="eu">EU member states only</option>
        </select>
      </label>
      <label>
        Prefer
        <select {...field("prefer")}>
          <option value="">no preference</option>
          <option value="low-carbon">lowest gCO2e per token</option>
        </select>
      </label>
      <ErrorNote error={error} />
      <div class="wide">
        <button type="submit" disabled={busy}>
          Deploy
        </button>
      </div>
    </form>
  );
}

function Scale(props: { deployment: DeploymentView; onDone: () => void }) {
  const d = props.deployment;
  const [min, setMin] = useState(String(d.min_replicas));
  const [max, setMax] = useState(String(d.max_replicas));
  const id = `scale-${d.name.replace(/[^a-zA-Z0-9]/g, "-")}`;
  return (
    <div class="scale">
      <label for={`${id}-min`}>Min</label>
      <input
        id={`${id}-min`}
        type="number"
        min="0"
        max="64"
        value={min}
        onInput={(e) => setMin(e.currentTarget.value)}
      />
      <label for={`${id}-max`}>Max</label>
      <input
        id={`${id}-max`}
        type="number"
        min="1"
        max="64"
        value={max}
        onInput={(e) => setMax(e.currentTarget.value)}
      />
      <ConfirmButton
        label="Scale"
        name={`Scale ${d.name}`}
        question={`Make ${d.name} again with ${min} to ${max} replicas? Its replicas are unloaded and placed again.`}
        confirm="Scale"
        onConfirm={async () => {
          // The API has no update: the CLI's way is remove, then deploy again with the new counts.
          await api.deployments.remove(d.name);
          await api.deployments.create({
            ...specOf(d),
            min_replicas: Number(min),
            max_replicas: Number(max),
          });
          props.onDone();
        }}
      />
    </div>
  );
}

export function DeploymentsPage() {
  const identity = useIdentity();
  const list = usePoll(
    async (signal) => {
      const [deployments, replicas] = await Promise.all([
        api.deployments.list({}, { signal }),
        api.replicas.list({ signal }),
      ]);
      return { deployments: deployments.deployments, replicas: replicas.replicas };
    },
    [],
    5_000,
  );
  const writer = canWrite(identity);
  return (
    <Page title="Deployments">
      <ErrorNote error={list.error} />
      <TableBox label="Deployments">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Source</th>
            <th scope="col">Replicas</th>
            <th scope="col">Placement</th>
            {writer && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody>
          {(list.data?.deployments ?? []).map((d) => (
            <tr key={d.name}>
              <td>{printable(d.name)}</td>
              <td class="break">{printable(d.source)}</td>
              <td>
                {d.min_replicas}–{d.max_replicas}
                {d.min_replicas === 0 && <div class="sub">scales to zero</div>}
              </td>
              <td>
                pool {printable(d.pool)}, GPU {d.gpu}
                {d.countries.length > 0 && `, in ${d.countries.join(" ")}`}
                {d.region && `, region ${d.region}`}
                {d.prefer && `, prefers ${d.prefer}`}
              </td>
              {writer && (
                <td class="row-actions">
                  <div>
                    <Scale deployment={d} onDone={list.reload} />
                    <ConfirmButton
                      label="Remove"
                      name={`Remove ${d.name}`}
                      danger
                      question={`Remove ${d.name}? Its replicas are unloaded and requests for it fail.`}
                      confirm="Remove"
                      onConfirm={async () => {
                        await api.deployments.remove(d.name);
                        list.reload();
                      }}
                    />
                  </div>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </TableBox>
      {list.data?.deployments.length === 0 && <p>No deployment yet.</p>}
      <section class="panel" aria-labelledby="replicas">
        <h2 id="replicas">Replicas</h2>
        <TableBox label="Replicas">
          <thead>
            <tr>
              <th scope="col">Deployment</th>
              <th scope="col">Machine</th>
              <th scope="col">State</th>
              <th scope="col">Why there</th>
            </tr>
          </thead>
          <tbody>
            {(list.data?.replicas ?? []).map((r) => (
              <tr key={`${r.deployment}@${r.machine_id}`}>
                <td>{printable(r.deployment)}</td>
                <td>{printable(r.machine_name)}</td>
                <td>{printable(r.state)}</td>
                <td>{r.placed_because ? printable(r.placed_because) : "—"}</td>
              </tr>
            ))}
          </tbody>
        </TableBox>
        {list.data?.replicas.length === 0 && <p>No replica runs now: models load on their first request.</p>}
      </section>
      {writer && <CreateForm onCreated={list.reload} />}
    </Page>
  );
}

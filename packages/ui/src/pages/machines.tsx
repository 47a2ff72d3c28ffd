import type { MachineView } from "@beta9/protocol";
import { api } from "../api.ts";
import { bytes, ErrorNote, Page, printable, StatusBadge, TableBox, usePoll, when } from "../components.tsx";
import { Link } from "../router.tsx";

export function gpuSummary(m: MachineView): string {
  if (m.hardware.gpus.length === 0) return "none";
  return m.hardware.gpus.map((g) => `${g.name} (${bytes(g.memory_total_bytes)})`).join(", ");
}

export function MachinesPage() {
  const list = usePoll((signal) => api.machines.list({}, { signal }), [], 5_000);
  return (
    <Page title="Machines">
      <ErrorNote error={list.error} />
      <TableBox label="Machines">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Status</th>
            <th scope="col">Pool</th>
            <th scope="col">GPUs</th>
            <th scope="col">Country</th>
            <th scope="col">Models</th>
            <th scope="col">Last heartbeat</th>
          </tr>
        </thead>
        <tbody>
          {(list.data?.machines ?? []).map((m) => (
            <tr key={m.id}>
              <td>
                <Link href={`/machines/${encodeURIComponent(m.id)}`}>{printable(m.name)}</Link>
                <div class="sub">{printable(m.hostname)}</div>
              </td>
              <td>
                <StatusBadge status={m.status} />
              </td>
              <td>{printable(m.pool)}</td>
              <td>{printable(gpuSummary(m))}</td>
              <td>{m.country ?? "—"}</td>
              <td>{(m.inference?.models ?? []).map((s) => printable(s.name)).join(", ") || "—"}</td>
              <td>{when(m.last_heartbeat_at)}</td>
            </tr>
          ))}
        </tbody>
      </TableBox>
      {list.data?.machines.length === 0 && <p>No machine has joined yet.</p>}
    </Page>
  );
}

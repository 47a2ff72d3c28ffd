/**
 * A worker process of the heartbeat bench (run.ts forks it): holds one Fleet of simulated agents and
 * does what the parent asks over IPC; it exits when asked to close or when the parent goes away.
 */
import { Fleet, type FleetReply, type FleetRequest } from "./fleet.ts";

let fleet: Fleet | undefined;

function answer(id: number, run: () => unknown): void {
  Promise.resolve()
    .then(run)
    .then(
      (value) => process.send?.({ id, ok: true, value } satisfies FleetReply),
      (err: unknown) => process.send?.({ id, ok: false, error: (err as Error).message } satisfies FleetReply),
    );
}

process.on("message", (m: FleetRequest) => {
  if (m.op === "spec") {
    answer(m.id, () => {
      fleet = new Fleet(m.spec);
    });
    return;
  }
  const f = fleet;
  if (!f) {
    process.send?.({ id: m.id, ok: false, error: "no spec yet" } satisfies FleetReply);
    return;
  }
  switch (m.op) {
    case "connect":
      return answer(m.id, () => f.connect());
    case "startWindow":
      return answer(m.id, () => f.startWindow(m.arg ?? 0));
    case "endWindow":
      return answer(m.id, () => f.endWindow());
    case "pendingInWindow":
      return answer(m.id, () => f.pendingInWindow());
    case "report":
      return answer(m.id, () => f.report());
    case "close":
      f.close();
      process.send?.({ id: m.id, ok: true, value: null } satisfies FleetReply, () => process.exit(0));
      return;
  }
});
// The parent died without closing us: go too.
process.on("disconnect", () => process.exit(0));

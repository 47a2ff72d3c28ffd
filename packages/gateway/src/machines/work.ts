import type { MachineView } from "@beta9/protocol";
import type { Router } from "../router/router.ts";
import type { Drains } from "../scheduler/drain.ts";

/** What a machine connected here is doing: answers in flight, and what its drain still waits for. */
export function machineWork(
  ctx: { router: Router; drains: Drains },
  id: string,
  status: MachineView["status"] | undefined,
): Pick<MachineView, "in_flight" | "drain_waiting_for"> {
  const waiting = status === "DRAINING" ? ctx.drains.waitingFor(id) : undefined;
  return {
    in_flight: ctx.router.outstanding(id),
    ...(waiting === undefined ? {} : { drain_waiting_for: waiting }),
  };
}

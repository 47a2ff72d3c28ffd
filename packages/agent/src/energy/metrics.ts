import { ENERGY_METHODS } from "@beta9/protocol";
import { Counter, Gauge, type Registry } from "prom-client";
import type { EngineEnergy } from "./engine-energy.ts";

/** The machine's metered energy by method, and its engines' power over the last bucket. */
export function registerEnergyMetrics(reg: Registry, energy: EngineEnergy): void {
  new Counter({
    name: "beta9_agent_energy_wh_total",
    help: "Energy the engines on this machine used while answering, in Wh, by how it was measured.",
    labelNames: ["method"],
    registers: [reg],
    collect() {
      this.reset();
      for (const method of ENERGY_METHODS) {
        const wh = energy.whByMethod.get(method);
        if (wh !== undefined) this.inc({ method }, wh);
      }
    },
  });
  new Counter({
    name: "beta9_agent_machine_energy_wh_total",
    help: "Energy the whole machine (all CPU time, all GPUs) used since the agent started, in Wh, by how it was measured.",
    labelNames: ["method"],
    registers: [reg],
    collect() {
      this.reset();
      for (const method of ENERGY_METHODS) {
        const wh = energy.machineWhByMethod.get(method);
        if (wh !== undefined) this.inc({ method }, wh);
      }
    },
  });
  new Gauge({
    name: "beta9_agent_engine_power_watts",
    help: "Power the engines drew over the last measured interval (absent before the first answer).",
    registers: [reg],
    collect() {
      if (energy.lastWatts !== undefined) this.set(energy.lastWatts);
    },
  });
}

import type { DeploymentPullEvent } from "@beta9/sdk";
import cliProgress from "cli-progress";
import { bytes } from "../format.ts";
import type { CliIO } from "../io.ts";

/** Shows a pull's progress events as they come. */
export interface PullView {
  update(event: DeploymentPullEvent): void;
  /** The pull ended (or failed): bars are finished so what follows prints below them. */
  end(): void;
}

/** A bar per machine on a terminal; otherwise plain lines on stderr, at each new step and each 10%. */
export function pullView(io: CliIO): PullView {
  return io.progressStream && io.tty?.stderr ? new PullBars(io.progressStream) : new PullLines(io);
}

interface Row {
  machine: string;
  status: string;
  unit?: DeploymentPullEvent["unit"];
}

/** "gpu-box-1: pulling llama3.2:1b"; the machine is left out when the status names it already. */
function label(event: DeploymentPullEvent): string {
  const machine = event.machine_name;
  return machine && !event.status.includes(machine) ? `${machine}: ${event.status}` : event.status;
}

/** "1.2 MB", or "120 tensors" while a machine converts. */
function amount(n: number, unit: DeploymentPullEvent["unit"]): string {
  return unit === "tensors" ? `${n} tensors` : bytes(n);
}

function hasBytes(event: DeploymentPullEvent): event is DeploymentPullEvent & { total: number } {
  return typeof event.total === "number" && event.total > 0;
}

class PullBars implements PullView {
  readonly #bars: cliProgress.MultiBar;
  readonly #rows = new Map<string, cliProgress.SingleBar>();

  constructor(stream: NodeJS.WritableStream) {
    this.#bars = new cliProgress.MultiBar({
      stream,
      format: (options, params, payload: Row & { total?: number }) => {
        const text = payload.machine ? `${payload.machine}: ${payload.status}` : payload.status;
        if (!params.total || params.total <= 1) return text;
        const bar = cliProgress.Format.BarFormat(params.progress, options);
        const percent = Math.floor(params.progress * 100);
        return `${text}  ${bar} ${percent}%  ${amount(params.value, payload.unit)} / ${amount(params.total, payload.unit)}`;
      },
      barCompleteChar: "█",
      barIncompleteChar: "░",
      barsize: 30,
      hideCursor: false,
      linewrap: true,
      gracefulExit: false,
      fps: 10,
    });
  }

  update(event: DeploymentPullEvent): void {
    if (event.status === "success") return;
    const key = event.machine_id ?? "";
    const machine = event.machine_name ?? "";
    const row: Row = {
      machine: machine && !event.status.includes(machine) ? machine : "",
      status: event.status,
      unit: event.unit,
    };
    let bar = this.#rows.get(key);
    if (!bar) {
      bar = this.#bars.create(hasBytes(event) ? event.total : 1, event.completed ?? 0, row);
      this.#rows.set(key, bar);
      return;
    }
    if (hasBytes(event)) {
      if (bar.getTotal() !== event.total) bar.setTotal(event.total);
      bar.update(event.completed ?? 0, row);
    } else {
      bar.setTotal(1);
      bar.update(0, row);
    }
  }

  end(): void {
    this.#bars.stop();
  }
}

class PullLines implements PullView {
  readonly #io: CliIO;
  readonly #last = new Map<string, string>();

  constructor(io: CliIO) {
    this.#io = io;
  }

  update(event: DeploymentPullEvent): void {
    if (event.status === "success") return;
    const key = event.machine_id ?? "";
    let line = label(event);
    let step = line;
    if (hasBytes(event)) {
      const percent = Math.floor((100 * (event.completed ?? 0)) / event.total);
      step = `${line} ${Math.floor(percent / 10) * 10}`;
      line = `${line} ${percent}% (${amount(event.completed ?? 0, event.unit)} of ${amount(event.total, event.unit)})`;
    }
    if (this.#last.get(key) === step) return;
    this.#last.set(key, step);
    this.#io.stderr(`${line}\n`);
  }

  end(): void {}
}

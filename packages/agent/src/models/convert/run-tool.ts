import { statfs } from "node:fs/promises";
import { startChild } from "../../process/child.ts";
import type { PidfileRegistry } from "../../process/pidfiles.ts";
import { ModelError } from "../model-error.ts";

/** How a conversion tool ended when it did not succeed: stopped by the caller, or failed with its last words. */
export type ToolOutcome = { ok: true } | { ok: false; stopped: boolean; said: string };

export interface RunToolOptions {
  name: string;
  command: string;
  args: readonly string[];
  cwd?: string | undefined;
  signal?: AbortSignal | undefined;
  onLine?: ((line: string) => void) | undefined;
  pidfiles?: PidfileRegistry | undefined;
}

/** Errors name what was refused: lines that say so beat the progress lines before them. */
const REFUSAL = /error|failed|invalid|not found|cannot|could not|no such|denied|no space/i;

/**
 * Run a conversion tool as a child (argument array, its own process group, killed with the agent),
 * stopped when `signal` aborts; a failure comes back with the lines that say why.
 */
export async function runTool(opts: RunToolOptions): Promise<ToolOutcome> {
  if (opts.signal?.aborted) return { ok: false, stopped: true, said: "" };
  let child: Awaited<ReturnType<typeof startChild>>;
  try {
    child = await startChild({
      name: opts.name,
      command: opts.command,
      args: opts.args,
      cwd: opts.cwd,
      // Only what the tools need: no credentials of the agent's environment reach them.
      env: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: "C" },
      tail: ["stdout", "stderr"],
      pidfiles: opts.pidfiles,
      onLine: (line) => opts.onLine?.(line),
    });
  } catch (err) {
    // The program is missing or cannot run: said as startChild words it.
    return { ok: false, stopped: false, said: (err as Error).message };
  }
  const stop = () => void child.stop(5_000);
  opts.signal?.addEventListener("abort", stop, { once: true });
  const exit = await child.exited.finally(() => opts.signal?.removeEventListener("abort", stop));
  if (opts.signal?.aborted) return { ok: false, stopped: true, said: "" };
  if (exit.code === 0) return { ok: true };
  const lines = child
    .tail()
    .split("\n")
    .map((l) => l.replace(/\s+/g, " ").trim())
    .filter((l) => l !== "");
  const refusals = lines.filter((l) => REFUSAL.test(l));
  const said = (refusals.length > 0 ? refusals : lines).slice(-3).join("; ");
  return { ok: false, stopped: false, said: said || `exit code ${exit.code}` };
}

/**
 * Refuses before a tool runs when `dir`'s file system cannot hold `need` bytes: a tool that meets a
 * full disk halfway wastes its time. `doing` names the model and the step ("quantizing smol to F16").
 */
export async function ensureRoom(dir: string, need: number, doing: string): Promise<void> {
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  if (free < need)
    throw new ModelError(
      "insufficient_disk",
      `${doing} needs about ${Math.ceil(need / 1024 ** 2)} MiB in ${dir}, and ${Math.floor(free / 1024 ** 2)} MiB are free; free some space or remove models`,
    );
}

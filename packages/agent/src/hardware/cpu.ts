import type { CpuInfo } from "node:os";

/**
 * The CPU model from /proc/cpuinfo ("model name", the same on every x86 core); undefined when the
 * kernel does not print one, as on most ARM servers. Throws when the text is not cpuinfo at all.
 */
export function parseCpuInfoModel(text: string): string | undefined {
  const entries = text
    .split(/\r?\n/)
    .map((line) => /^([^:]+?)\s*:\s*(.*)$/.exec(line))
    .filter((match) => match !== null);
  if (entries.length === 0) throw new Error("/proc/cpuinfo has no 'key : value' lines");
  const model = entries.find((match) => match[1] === "model name")?.[2]?.trim();
  return model === undefined || model === "" ? undefined : model;
}

/** os.cpus() as a fallback; its model can be empty in containers and on some ARM boards. */
export function cpuModelFromOs(cpus: readonly CpuInfo[]): string {
  const model = cpus.find((cpu) => cpu.model.trim() !== "")?.model.trim();
  return model ?? "unknown";
}

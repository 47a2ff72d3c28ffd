import type { JobView } from "@beta9/sdk";
import { formatSize } from "../../size.ts";

/** An argv as a person would type it: words with spaces or quotes are quoted. */
export function commandLine(argv: readonly string[]): string {
  return argv
    .map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`))
    .join(" ");
}

/** "nvidia GPU with 24 GB, 4 CPUs, 8 GB memory"; "-" when it asks for nothing. */
export function resourcesText(spec: JobView["spec"]): string {
  const r = spec.resources ?? {};
  const parts: string[] = [];
  if (r.gpu && r.gpu !== "none") {
    const count = r.gpu_count && r.gpu_count > 1 ? `${r.gpu_count}x ` : "";
    const vram = r.min_vram_bytes ? ` with ${formatSize(r.min_vram_bytes)}` : "";
    parts.push(`${count}${r.gpu === "any" ? "any" : r.gpu} GPU${vram}`);
  }
  if (r.cpu !== undefined) parts.push(`${r.cpu} CPU${r.cpu === 1 ? "" : "s"}`);
  if (r.memory_bytes !== undefined) parts.push(`${formatSize(r.memory_bytes)} memory`);
  return parts.length ? parts.join(", ") : "-";
}

/** "Python 3.12 with numpy, torch"; "-" for none. */
export function environmentText(spec: JobView["spec"]): string {
  const e = spec.environment;
  if (!e) return "-";
  const parts = [e.python ? `Python ${e.python}` : "Python"];
  if (e.packages?.length) parts.push(`with ${e.packages.join(", ")}`);
  if (e.requirements !== undefined) {
    const n = e.requirements.split("\n").filter((l) => l.trim() && !l.trim().startsWith("#")).length;
    parts.push(`with a requirements file (${n} ${n === 1 ? "line" : "lines"})`);
  }
  return parts.join(" ");
}

/** "pool gpu, region eu, countries DE,FR". */
export function placementText(spec: JobView["spec"]): string {
  const parts = [`pool ${spec.pool ?? "external"}`];
  if (spec.region) parts.push(`region ${spec.region}`);
  if (spec.countries?.length) parts.push(`countries ${spec.countries.join(",")}`);
  return parts.join(", ");
}

/** The spec's timeout as people say it, with the gateway's default shown. */
export function timeoutText(spec: JobView["spec"]): string {
  return spec.timeout_seconds === undefined ? "1h (default)" : exactDuration(spec.timeout_seconds);
}

/** Seconds in every unit they use: 5400 → "1h30m", 90 → "1m30s". */
export function exactDuration(seconds: number): string {
  const units: Array<[string, number]> = [
    ["d", 86_400],
    ["h", 3600],
    ["m", 60],
    ["s", 1],
  ];
  let left = Math.max(0, Math.round(seconds));
  let text = "";
  for (const [name, per] of units) {
    if (left >= per) {
      text += `${Math.floor(left / per)}${name}`;
      left %= per;
    }
  }
  return text || "0s";
}

/** The macOS keys detection reads, each through `sysctl -n KEY`. */
export const SYSCTL_CPU_BRAND = "machdep.cpu.brand_string";
export const SYSCTL_MEMORY_BYTES = "hw.memsize";
export const SYSCTL_LOGICAL_CPUS = "hw.ncpu";

/**
 * Reads one value from `sysctl -n KEY` (a bare value) or from `sysctl KEY` / `sysctl -a`
 * (lines of `key: value`), so a pasted full listing parses the same as the terse form.
 */
export function parseSysctlValue(text: string, key: string): string {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== "");
  const prefix = `${key}:`;
  const named = lines.find((line) => line.startsWith(prefix));
  if (named !== undefined) {
    const value = named.slice(prefix.length).trim();
    if (value !== "") return value;
  } else if (lines.length === 1 && !/^[\w.]+: /.test(lines[0]!)) {
    return lines[0]!.trim();
  }
  throw new Error(`sysctl output has no value for ${key}: ${JSON.stringify(text.trim().slice(0, 200))}`);
}

export function parseSysctlInteger(text: string, key: string): number {
  const value = parseSysctlValue(text, key);
  if (!/^\d+$/.test(value)) throw new Error(`sysctl ${key} is not an integer: ${JSON.stringify(value)}`);
  const number = Number(value);
  if (!Number.isSafeInteger(number)) throw new Error(`sysctl ${key} is out of range: ${value}`);
  return number;
}

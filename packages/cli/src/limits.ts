import { InvalidArgumentError } from "commander";

/** Per-minute limits as people read them: "60 rpm, 100000 tpm"; "-" for none. */
export function limitsText(k: { rpm_limit?: number | null; tpm_limit?: number | null }): string {
  const parts = [];
  if (k.rpm_limit != null) parts.push(`${k.rpm_limit} rpm`);
  if (k.tpm_limit != null) parts.push(`${k.tpm_limit} tpm`);
  return parts.length ? parts.join(", ") : "-";
}

/** A flag taking a whole number of at least 1. */
export function positiveInt(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1)
      throw new InvalidArgumentError(`${flag} takes a whole number of at least 1`);
    return n;
  };
}

/** A limit flag: a whole number of at least 1, or "none" to remove the limit (commander keeps no null). */
export function limitOrNone(flag: string): (value: string) => number | "none" {
  const number = positiveInt(flag);
  return (value) => (value.trim().toLowerCase() === "none" ? "none" : number(value));
}

/** What the gateway takes for a parsed limit flag: the number, or null for none. */
export const limitValue = (v: number | "none"): number | null => (v === "none" ? null : v);

/**
 * The growth of an energy counter between two reads. Hardware counters wrap (RAPL's energy_uj wraps
 * at max_energy_range_uj, about 65 kJ on a desktop package: minutes under load) and can go backwards
 * (a driver reload resets NVML's; a VM migration resets RAPL's). A wrap is counted once through the
 * top; anything else that goes backwards is `undefined`: that interval is unknown, never a zero.
 */
export function counterDelta(previous: number, current: number, range?: number): number | undefined {
  if (!Number.isFinite(previous) || !Number.isFinite(current)) return undefined;
  if (current >= previous) return current - previous;
  if (range === undefined || !(range > 0) || previous > range) return undefined;
  const wrapped = range - previous + current;
  // More than half the range in one read is not a wrap but a reset (reads are seconds apart).
  return wrapped <= range / 2 ? wrapped : undefined;
}

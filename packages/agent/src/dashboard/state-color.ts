/** The colour of a model's or engine's state wherever the dashboard shows one. */
export function stateColor(state: string): string | undefined {
  if (state === "ready" || state === "running") return "green";
  if (state === "starting") return "yellow";
  if (state === "error") return "red";
  return undefined;
}

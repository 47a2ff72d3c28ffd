import Table from "cli-table3";

// kubectl's look: no borders, upper-case headers, columns three spaces apart, no colours.
const BORDERLESS = {
  top: "",
  "top-mid": "",
  "top-left": "",
  "top-right": "",
  bottom: "",
  "bottom-mid": "",
  "bottom-left": "",
  "bottom-right": "",
  left: "",
  "left-mid": "",
  mid: "",
  "mid-mid": "",
  right: "",
  "right-mid": "",
  middle: "   ",
};

function render(head: string[], rows: string[][]): string {
  const t = new Table({
    head,
    chars: BORDERLESS,
    style: { "padding-left": 0, "padding-right": 0, head: [], border: [], compact: true },
  });
  t.push(...rows);
  // cli-table3 pads the last column; trailing blanks only get in the way of grep and diff.
  return `${t
    .toString()
    .split("\n")
    .map((line) => line.trimEnd())
    .join("\n")}\n`;
}

/** A table for people: one header row, then one row per item. */
export function table(head: string[], rows: string[][]): string {
  return render(head, rows);
}

/** `Key:  value` lines, values aligned, for one item's details. */
export function details(pairs: Array<[string, string]>): string {
  return render(
    [],
    pairs.map(([key, value]) => [`${key}:`, value]),
  );
}

/** What `--json` prints: the gateway's answer as it came, for scripts and jq. */
export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export const JSON_FLAG_HELP = "print the gateway's JSON answer instead of a table (for scripts)";

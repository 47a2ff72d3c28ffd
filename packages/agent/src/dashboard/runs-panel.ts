import { Box, Text } from "ink";
import React from "react";
import { Panel } from "./frame.ts";
import type { RunView } from "./model.ts";

const h = React.createElement;

/** Rows the panel wants: a header and one per job, or the one line that says there are none. */
export function runsRows(runs: readonly RunView[]): number {
  return runs.length === 0 ? 1 : 1 + runs.length;
}

const COLOR: Record<string, string> = {
  PREPARING: "yellow",
  RUNNING: "green",
  FAILED: "red",
  TIMED_OUT: "red",
};

/** "45s", "12m 5s", "3h 20m": how long a job has run (or ran). */
export function runtime(ms: number | null): string {
  if (ms === null) return "–";
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function Row({ cells, dim = false, color }: { cells: string[]; dim?: boolean; color?: string | undefined }) {
  const [id, state, time, gpu, line] = cells;
  // Fixed columns never shrink, so a long last line is cut instead of pulling the columns out of line.
  const fixed = (width: number | string, text: string | undefined, c?: string) =>
    h(
      Box,
      { width, flexShrink: 0, paddingRight: 1 },
      h(Text, { wrap: "truncate-end", dimColor: dim, color: c }, text ?? ""),
    );
  return h(
    Box,
    null,
    fixed("25%", id),
    fixed(11, state, color),
    fixed(9, time),
    fixed(6, gpu),
    h(
      Box,
      { flexGrow: 1, flexShrink: 1, minWidth: 0 },
      h(Text, { wrap: "truncate-end", dimColor: dim }, line ?? ""),
    ),
  );
}

/** The jobs this agent runs or ran (kept until the gateway has their logs): newest first. */
export function RunsPanel({ runs, now, height }: { runs: readonly RunView[]; now: number; height: number }) {
  let body: React.ReactNode[];
  const running = runs.filter((r) => r.state === "PREPARING" || r.state === "RUNNING").length;
  if (runs.length === 0) body = [h(Text, { key: "none", dimColor: true }, "No jobs yet")];
  else if (height < 3 && runs.length > height - 1) {
    // No room for a table: one line sums it up.
    body = [
      h(
        Text,
        { key: "sum", wrap: "truncate-end" },
        `${running} running · ${runs.length} kept · newest ${runs[0]?.id}`,
      ),
    ];
  } else {
    const shown = runs.length > height - 1 ? runs.slice(0, height - 2) : runs;
    body = [
      h(Row, { key: "head", dim: true, cells: ["JOB", "STATE", "RUNTIME", "GPU", "LAST LINE"] }),
      ...shown.map((r) =>
        h(Row, {
          key: r.id,
          color: COLOR[r.state],
          cells: [
            r.id,
            r.state,
            runtime(r.startedAt === null ? null : (r.endedAt ?? now) - r.startedAt),
            r.gpus.length === 0 ? "cpu" : r.gpus.join(","),
            r.lastLine ?? "",
          ],
        }),
      ),
    ];
    if (shown.length < runs.length)
      body.push(h(Text, { key: "more", dimColor: true }, `… ${runs.length - shown.length} more`));
  }
  return h(Panel, { title: running > 0 ? `JOBS │ ${running} running` : "JOBS", height }, ...body);
}

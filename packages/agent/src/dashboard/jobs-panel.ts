import { Box, Text } from "ink";
import React from "react";
import { ago } from "./format.ts";
import { Panel } from "./frame.ts";
import type { JobView } from "./model.ts";
import { stateColor } from "./state-color.ts";

const h = React.createElement;

/** Rows the panel wants: a header and one per model, or the one line that says there are none. */
export function jobsRows(jobs: readonly JobView[]): number {
  return jobs.length === 0 ? 1 : 1 + jobs.length;
}

function Row({
  cells,
  dim = false,
  color,
}: {
  cells: [string, string, string, string];
  dim?: boolean;
  color?: string | undefined;
}) {
  const [model, role, state, requests] = cells;
  return h(
    Box,
    null,
    // Fixed columns never shrink, so a long last cell is cut instead of pulling the columns out of line.
    h(
      Box,
      { width: "35%", flexShrink: 0, paddingRight: 1 },
      h(Text, { wrap: "truncate-end", dimColor: dim }, model),
    ),
    h(Box, { width: 9, flexShrink: 0 }, h(Text, { wrap: "truncate-end", dimColor: dim }, role)),
    h(Box, { width: 9, flexShrink: 0 }, h(Text, { wrap: "truncate-end", dimColor: dim, color }, state)),
    h(
      Box,
      { flexGrow: 1, flexShrink: 1, minWidth: 0 },
      h(Text, { wrap: "truncate-end", dimColor: dim }, requests),
    ),
  );
}

function requests(job: JobView, now: number): string {
  if (job.running === 0 && job.served === 0) return "idle";
  return `${job.running} running · ${job.served} done · ${ago(now, job.lastRequestAt)}`;
}

/** What runs here: each served model (a replica when the gateway placed it) and its requests. */
export function JobsPanel({ jobs, now, height }: { jobs: readonly JobView[]; now: number; height: number }) {
  let body: React.ReactNode[];
  if (jobs.length === 0) body = [h(Text, { key: "none", dimColor: true }, "No models served yet")];
  else if (height < 3 && jobs.length > height - 1) {
    // No room for a table: one line sums it up.
    const running = jobs.reduce((n, j) => n + j.running, 0);
    const done = jobs.reduce((n, j) => n + j.served, 0);
    body = [
      h(
        Text,
        { key: "sum", wrap: "truncate-end" },
        `${jobs.length} served: ${jobs.map((j) => j.model).join(", ")} · ${running} running · ${done} done`,
      ),
    ];
  } else {
    const shown = jobs.length > height - 1 ? jobs.slice(0, height - 2) : jobs;
    body = [
      h(Row, { key: "head", dim: true, cells: ["MODEL", "ROLE", "STATE", "REQUESTS"] }),
      ...shown.map((j) =>
        h(Row, {
          key: j.model,
          color: stateColor(j.state),
          cells: [
            j.model,
            j.origin === "gateway" ? "replica" : j.origin === "local" ? "local" : "–",
            j.state,
            requests(j, now),
          ],
        }),
      ),
    ];
    if (shown.length < jobs.length)
      body.push(h(Text, { key: "more", dimColor: true }, `… ${jobs.length - shown.length} more`));
  }
  return h(Panel, { title: "SERVED MODELS", height }, ...body);
}

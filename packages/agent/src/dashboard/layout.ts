import { Box, Text } from "ink";
import React from "react";
import { BottomBorder, Divider } from "./frame.ts";
import { Header } from "./header.ts";
import { InferencePanel, inferenceRows } from "./inference-panel.ts";
import { JobsPanel, jobsRows } from "./jobs-panel.ts";
import { planLayout } from "./layout-plan.ts";
import { LogsPanel } from "./logs-panel.ts";
import type { DashboardModel } from "./model.ts";
import { RunsPanel, runsRows } from "./runs-panel.ts";
import { gpuGroups, StatusPanel } from "./status-panel.ts";
import { TooSmall } from "./too-small.ts";

const h = React.createElement;

/** The fork's screen: header, status, JOBS, SERVED MODELS, INFERENCE, LOGS, filling exactly `columns` × `rows`. */
export function Layout({
  model: m,
  columns,
  rows,
}: {
  model: DashboardModel;
  columns: number;
  rows: number;
}) {
  const plan = planLayout(
    { columns, rows },
    {
      gpuLines: gpuGroups(m.gpus).length,
      runs: runsRows(m.runs),
      jobs: jobsRows(m.jobs),
      inference: inferenceRows(m.inference.models),
    },
  );
  if (!plan) return h(TooSmall, { columns, rows });
  return h(
    Box,
    { flexDirection: "column", width: columns, height: rows },
    h(Header, { machine: m.machine }),
    h(StatusPanel, { model: m, gpuLines: plan.gpuLines, width: columns - 4 }),
    h(Divider),
    h(RunsPanel, { runs: m.runs, now: m.now, height: plan.runs }),
    h(Divider),
    h(JobsPanel, { jobs: m.jobs, now: m.now, height: plan.jobs }),
    h(Divider),
    h(InferencePanel, { inference: m.inference, height: plan.inference, width: columns - 4 }),
    h(Divider),
    h(LogsPanel, { logs: m.logs, pulls: m.pulls, height: plan.logs }),
    h(BottomBorder),
    m.stopping
      ? h(Text, { color: "yellow" }, "Stopping: engines are shutting down…")
      : h(Text, { dimColor: true }, "Press q or Ctrl+C to quit"),
  );
}

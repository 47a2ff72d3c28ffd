import { Box, Text } from "ink";
import React from "react";
import { bytes, columnsOf } from "./format.ts";
import { Panel } from "./frame.ts";
import type { DashboardModel, ModelView } from "./model.ts";
import { stateColor } from "./state-color.ts";

const h = React.createElement;
const SEP = " │ ";

/** Rows the panel wants: the status line, then one per model (or "Models: none"). */
export function inferenceRows(models: readonly ModelView[]): number {
  return 1 + Math.max(1, models.length);
}

function ModelLine({ model }: { model: ModelView }) {
  const facts = [
    model.engine,
    model.memoryBytes === null ? "" : bytes(model.memoryBytes),
    model.contextSize === null ? "" : `ctx ${model.contextSize}`,
  ]
    .filter(Boolean)
    .join(" · ");
  return h(
    Box,
    null,
    // The same columns as the served models' table, which never shrink.
    h(
      Box,
      { width: "35%", flexShrink: 0, paddingRight: 1 },
      h(Text, { wrap: "truncate-end", bold: true }, model.name),
    ),
    h(
      Box,
      { width: 9, flexShrink: 0 },
      h(Text, { wrap: "truncate-end", color: stateColor(model.state) }, model.state),
    ),
    h(
      Box,
      { flexGrow: 1, flexShrink: 1, minWidth: 0 },
      model.error
        ? h(Text, { wrap: "truncate-end", color: "red" }, model.error.split("\n")[0])
        : h(Text, { wrap: "truncate-end" }, facts),
    ),
  );
}

/** The engines' status, this machine's endpoint, and each model with its state and memory. */
export function InferencePanel({
  inference,
  height,
  width,
}: {
  inference: DashboardModel["inference"];
  height: number;
  /** Columns inside the frame. */
  width: number;
}) {
  const models = inference.models;
  const room = height - 1;
  const engines = inference.engines.length ? inference.engines.join(", ") : "none detected";
  const named = `Models: ${models.length ? models.map((m) => `${m.name} (${m.state})`).join(", ") : "none"}`;
  const head = `Status: ${inference.status}${SEP}Endpoint: ${inference.endpoint ?? "–"}`;
  // Engines that do not fit on the status line go up to the panel's title, which has room.
  const enginesUp = columnsOf(`${head}${SEP}Engines: ${engines}`) > width;
  // With one row only, the models are named on the status line.
  const status = h(
    Text,
    { key: "status", wrap: "truncate-end" },
    "Status: ",
    h(Text, { color: stateColor(inference.status) }, inference.status),
    `${SEP}Endpoint: ${inference.endpoint ?? "–"}${enginesUp ? "" : `${SEP}Engines: ${engines}`}${room < 1 ? SEP + named : ""}`,
  );
  let body: React.ReactNode[];
  if (room < 1) body = [];
  else if (models.length === 0) body = [h(Text, { key: "none", dimColor: true }, named)];
  else if (models.length > room && room < 2) body = [h(Text, { key: "named", wrap: "truncate-end" }, named)];
  else {
    const shown = models.length > room ? models.slice(0, room - 1) : models;
    body = shown.map((m) => h(ModelLine, { key: m.name, model: m }));
    if (shown.length < models.length)
      body.push(h(Text, { key: "more", dimColor: true }, `… ${models.length - shown.length} more`));
  }
  return h(
    Panel,
    { title: enginesUp ? `INFERENCE${SEP}Engines: ${engines}` : "INFERENCE", height },
    status,
    ...body,
  );
}

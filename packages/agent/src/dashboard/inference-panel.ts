import { Box, Text } from "ink";
import React from "react";
import { bytes } from "./format.ts";
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
    h(Box, { width: "35%", paddingRight: 1 }, h(Text, { wrap: "truncate-end", bold: true }, model.name)),
    h(Box, { width: 10 }, h(Text, { color: stateColor(model.state) }, model.state)),
    h(
      Box,
      { flexGrow: 1 },
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
}: {
  inference: DashboardModel["inference"];
  height: number;
}) {
  const models = inference.models;
  const room = height - 1;
  const shown = models.length > room ? models.slice(0, Math.max(0, room - 1)) : models;
  const engines = inference.engines.length ? inference.engines.join(", ") : "none detected";
  return h(
    Panel,
    { title: "INFERENCE", height },
    h(
      Text,
      { key: "status", wrap: "truncate-end" },
      "Status: ",
      h(Text, { color: stateColor(inference.status) }, inference.status),
      `${SEP}Endpoint: ${inference.endpoint ?? "–"}${SEP}Engines: ${engines}`,
    ),
    ...(models.length === 0
      ? [h(Text, { key: "none", dimColor: true }, "Models: none")]
      : shown.map((m) => h(ModelLine, { key: m.name, model: m }))),
    ...(shown.length < models.length
      ? [h(Text, { key: "more", dimColor: true }, `… ${models.length - shown.length} more`)]
      : []),
  );
}

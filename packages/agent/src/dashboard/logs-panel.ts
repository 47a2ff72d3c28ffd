import { Box, Text } from "ink";
import React from "react";
import { bytes, clock } from "./format.ts";
import { Panel } from "./frame.ts";
import type { LogLine } from "./log-feed.ts";
import type { PullView } from "./model.ts";

const h = React.createElement;
const BAR = 20;

const LEVEL_COLOR: Record<LogLine["level"], string | undefined> = {
  debug: "gray",
  info: undefined,
  warn: "yellow",
  error: "red",
};

function PullLine({ pull }: { pull: PullView }) {
  if (!pull.total)
    return h(Text, { wrap: "truncate-end", color: "cyan" }, `↓ pull ${pull.model}: ${pull.status}`);
  const done = Math.min(1, (pull.completed ?? 0) / pull.total);
  // A conversion counts tensors, a download bytes.
  const amount = (n: number) => (pull.unit === "tensors" ? `${n} tensors` : bytes(n));
  const filled = Math.round(done * BAR);
  return h(
    Text,
    { wrap: "truncate-end", color: "cyan" },
    `↓ pull ${pull.model} ${"█".repeat(filled)}${"░".repeat(BAR - filled)} ${Math.floor(done * 100)}% `,
    h(Text, { dimColor: true }, `${amount(pull.completed ?? 0)} of ${amount(pull.total)}`),
  );
}

/** The agent's log, newest at the bottom, and a progress bar for each pull under way. */
export function LogsPanel({
  logs,
  pulls,
  height,
}: {
  logs: readonly LogLine[];
  pulls: readonly PullView[];
  height: number;
}) {
  const bars = pulls.slice(-Math.max(0, height - 1));
  const room = height - bars.length;
  const lines = room > 0 ? logs.slice(-room) : [];
  return h(
    Panel,
    { title: "LOGS", height },
    ...lines.map((l, i) =>
      h(
        Box,
        { key: `l${i}` },
        h(
          Text,
          { wrap: "truncate-end" },
          h(Text, { dimColor: true }, `${clock(l.time)} `),
          h(Text, { color: LEVEL_COLOR[l.level] }, l.text.split("\n")[0]),
        ),
      ),
    ),
    ...bars.map((p, i) => h(Box, { key: `p${i}` }, h(PullLine, { pull: p }))),
  );
}

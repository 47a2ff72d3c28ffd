import { Box, Text } from "ink";
import React from "react";
import { MIN_COLUMNS, MIN_ROWS } from "./layout-plan.ts";

const h = React.createElement;

/** What a terminal too small for the dashboard shows instead of a garbled frame. */
export function TooSmall({ columns, rows }: { columns: number; rows: number }) {
  return h(
    Box,
    { flexDirection: "column", width: columns, height: rows, overflow: "hidden" },
    h(Text, { bold: true, color: "yellow" }, `Terminal too small (${columns}×${rows})`),
    h(
      Text,
      null,
      `The dashboard needs ${MIN_COLUMNS}×${MIN_ROWS}: enlarge the window, or run b9agent --no-tui for plain logs.`,
    ),
    h(Text, { dimColor: true }, "The agent keeps running. Press q or Ctrl+C to quit."),
  );
}

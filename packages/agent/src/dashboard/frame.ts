import { Box, Text } from "ink";
import React from "react";

const h = React.createElement;

/*
 * The fork's frame: a double-lined box split into sections by ╠═╣ and, under each panel's title, ╟─╢.
 * Lines are Ink borders that stretch with the terminal, never strings of a counted length.
 */

const NO_CORNERS = { topLeft: "", topRight: "", bottomLeft: "", bottomRight: "", left: "", right: "" };

/** A horizontal line filling the rest of its row. */
function Rule({ char }: { char: string }) {
  return h(Box, {
    flexGrow: 1,
    minWidth: 2,
    height: 1,
    borderStyle: { ...NO_CORNERS, top: char, bottom: char },
    borderTop: true,
    borderBottom: false,
    borderLeft: false,
    borderRight: false,
  });
}

/** ╔══ TITLE ═══╗ */
export function TopBorder({ title }: { title: string }) {
  return h(
    Box,
    { height: 1 },
    h(Box, { flexShrink: 0 }, h(Text, null, "╔══ ")),
    // A long machine name is cut, never the frame.
    h(Box, { flexShrink: 1 }, h(Text, { bold: true, wrap: "truncate-end" }, title)),
    h(Box, { flexShrink: 0 }, h(Text, null, " ")),
    h(Rule, { char: "═" }),
    h(Box, { flexShrink: 0 }, h(Text, null, "╗")),
  );
}

/** ╠═══╣ between sections, ╟───╢ under a panel's title. */
export function Divider({ thin = false }: { thin?: boolean }) {
  return h(
    Box,
    { height: 1 },
    h(Text, null, thin ? "╟" : "╠"),
    h(Rule, { char: thin ? "─" : "═" }),
    h(Text, null, thin ? "╢" : "╣"),
  );
}

/** ╚═══╝ */
export function BottomBorder() {
  return h(Box, { height: 1 }, h(Text, null, "╚"), h(Rule, { char: "═" }), h(Text, null, "╝"));
}

/** Rows between ║ … ║, exactly `height` of them; rows past the height are cut off, never overlaid. */
export function Section({ height, children }: { height: number; children?: React.ReactNode }) {
  return h(
    Box,
    {
      height,
      flexDirection: "column",
      overflow: "hidden",
      paddingX: 1,
      borderStyle: { ...NO_CORNERS, top: "", bottom: "", left: "║", right: "║" },
      borderTop: false,
      borderBottom: false,
    },
    React.Children.map(children, (row) => h(Box, { flexShrink: 0, flexDirection: "column" }, row)),
  );
}

/** A panel: its title, a thin line, then its rows. */
export function Panel({
  title,
  height,
  children,
}: {
  title: string;
  height: number;
  children?: React.ReactNode;
}) {
  return h(
    React.Fragment,
    null,
    h(Section, { height: 1 }, h(Text, { bold: true }, title)),
    h(Divider, { thin: true }),
    h(Section, { height }, children),
  );
}

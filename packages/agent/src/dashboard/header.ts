import React from "react";
import { TopBorder } from "./frame.ts";

/** The top line: which machine this is. */
export function Header({ machine }: { machine: { id: string; name?: string | undefined } }) {
  const named = machine.name && machine.name !== machine.id ? ` (${machine.name})` : "";
  return React.createElement(TopBorder, { title: `Beta9 Agent: ${machine.id}${named}` });
}

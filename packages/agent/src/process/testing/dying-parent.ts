/*
 * Plays the agent for the parent-death test: starts one child (forking-child.ts), prints the
 * child's pid, then waits to be SIGKILLed. The kernel should then kill the child.
 */
import { fileURLToPath } from "node:url";
import { startChild } from "../child.ts";

const forkingChild = fileURLToPath(new URL("./forking-child.ts", import.meta.url));
const child = await startChild({
  name: "child",
  command: process.execPath,
  args: [forkingChild],
  env: { ...process.env },
});
process.stdout.write(`${child.pid}\n`);
setInterval(() => {}, 60_000);

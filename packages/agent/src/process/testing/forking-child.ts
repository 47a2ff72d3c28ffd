/*
 * A child for the process tests, run by the real Node binary. Flags choose its behaviour: print
 * lines on stdout or stderr, exit with a code, ignore SIGTERM, fork a grandchild (which may ignore
 * SIGTERM too). It says "child ready" once its handlers are in place, the grandchild likewise.
 */
import { spawn } from "node:child_process";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    stdout: { type: "string", multiple: true, default: [] },
    stderr: { type: "string", multiple: true, default: [] },
    "exit-code": { type: "string" },
    "ignore-sigterm": { type: "boolean", default: false },
    grandchild: { type: "boolean", default: false },
    "grandchild-ignores-sigterm": { type: "boolean", default: false },
    // Only marks the command line, so a test can tell its processes apart.
    tag: { type: "string" },
  },
});

for (const line of values.stdout) process.stdout.write(`${line}\n`);
for (const line of values.stderr) process.stderr.write(`${line}\n`);
if (values["exit-code"] !== undefined) process.exit(Number(values["exit-code"]));
if (values["ignore-sigterm"])
  process.on("SIGTERM", () => process.stderr.write("child got SIGTERM, ignoring it\n"));
if (values.grandchild) {
  // Like a job's subprocess or vLLM's workers: it shares our output, and must go when we are stopped.
  const ignore = values["grandchild-ignores-sigterm"] ? 'process.on("SIGTERM", () => {});' : "";
  const code = `${ignore} console.log("grandchild " + process.pid + " ready"); setInterval(() => {}, 60000);`;
  spawn(process.execPath, ["-e", code], { stdio: ["ignore", "inherit", "inherit"] });
}
process.stdout.write("child ready\n");
// Stay alive until told otherwise.
setInterval(() => {}, 60_000);

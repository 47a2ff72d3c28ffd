import { execFile } from "node:child_process";
import { findExecutable } from "./find-executable.ts";

let deathSignalProbe: Promise<readonly string[] | null> | undefined;

/**
 * `setpriv --pdeathsig KILL --` where util-linux's setpriv supports it: the kernel then kills the
 * child when the agent dies, even by SIGKILL. setpriv execs the child, so the pid stays the same.
 */
export function detectDeathSignalPrefix(): Promise<readonly string[] | null> {
  if (process.platform !== "linux") return Promise.resolve(null);
  deathSignalProbe ??= findExecutable("setpriv", process.env.PATH).then(
    (setpriv) =>
      new Promise((resolve) => {
        if (setpriv === null) return resolve(null);
        // By absolute path: the child's own PATH may not include /usr/bin.
        execFile(setpriv, ["--help"], { timeout: 5_000, encoding: "utf8" }, (error, stdout, stderr) => {
          const supported = error === null && `${stdout}${stderr}`.includes("--pdeathsig");
          resolve(supported ? [setpriv, "--pdeathsig", "KILL", "--"] : null);
        });
      }),
  );
  return deathSignalProbe;
}

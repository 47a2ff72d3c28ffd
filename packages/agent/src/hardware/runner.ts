import { execFile } from "node:child_process";

/** What a probe got back from a tool; null when the tool is missing, timed out or failed silently. */
export type CommandResult = { stdout: string } | null;

/** Runs one external tool with an argument array. Injected so detection can be tested without the tools. */
export type CommandRunner = (cmd: string, args: string[]) => Promise<CommandResult>;

export interface ExecFileRunnerOptions {
  /** Kill the tool after this long; system_profiler and rocm-smi can take seconds. */
  timeoutMs?: number;
  maxBufferBytes?: number;
}

/**
 * The real runner: `execFile` with an argument array (never a shell), a timeout and a bounded buffer.
 * A tool that exits non-zero but still printed something is returned as is, because rocm-smi
 * exits non-zero when one of several queries is unsupported yet prints the others; parsers decide.
 */
export function createExecFileRunner(options: ExecFileRunnerOptions = {}): CommandRunner {
  const timeout = options.timeoutMs ?? 5_000;
  const maxBuffer = options.maxBufferBytes ?? 8 * 1024 * 1024;
  return (cmd, args) =>
    new Promise((resolve) => {
      execFile(
        cmd,
        args,
        { timeout, maxBuffer, windowsHide: true, encoding: "utf8", env: { ...process.env, LC_ALL: "C" } },
        (error, stdout) => {
          if (error === null) {
            resolve({ stdout });
            return;
          }
          // Not installed, not executable, killed by the timeout, or output too large.
          const exitedWithOutput = typeof error.code === "number" && !error.killed && stdout.trim() !== "";
          resolve(exitedWithOutput ? { stdout } : null);
        },
      );
    });
}

export const execFileRunner: CommandRunner = createExecFileRunner();

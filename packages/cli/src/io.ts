/** Everything the CLI touches outside itself, so tests can run it in-process and read what it printed. */
export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Readonly<Record<string, string | undefined>>;
  /** Clock for "3s ago"; tests pin it. */
  now?: () => number;
  /** Where prompts are read from (`b9 chat`); none means an empty input. */
  stdin?: NodeJS.ReadableStream | undefined;
  /** Which standard streams are terminals: bars, spinners and the `>>>` prompt are only drawn on one. */
  tty?: { stdin: boolean; stdout: boolean; stderr: boolean } | undefined;
  /** The terminal that progress bars and spinners draw on, when stderr is one. */
  progressStream?: NodeJS.WritableStream | undefined;
  /** Standard output as a stream, for the interactive prompt's line editing on a terminal. */
  stdoutStream?: NodeJS.WritableStream | undefined;
  /** Runs `handler` on Ctrl+C (SIGINT) instead of exiting; the returned function stops that. */
  onInterrupt?: ((handler: () => void) => () => void) | undefined;
}

export function processIO(): CliIO {
  // A reader that leaves early (`b9 chat m "…" | head -1`) is not an error worth a stack trace.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
      throw error;
    });
  }
  return {
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    env: process.env,
    stdin: process.stdin,
    tty: {
      stdin: process.stdin.isTTY === true,
      stdout: process.stdout.isTTY === true,
      stderr: process.stderr.isTTY === true,
    },
    progressStream: process.stderr.isTTY ? process.stderr : undefined,
    stdoutStream: process.stdout,
    onInterrupt: (handler) => {
      process.on("SIGINT", handler);
      return () => void process.off("SIGINT", handler);
    },
  };
}

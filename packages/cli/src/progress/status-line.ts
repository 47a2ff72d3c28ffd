import cliProgress from "cli-progress";
import type { CliIO } from "../io.ts";

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/** One line of "what is happening now": a spinner that redraws in place on a terminal. */
export interface StatusLine {
  set(text: string): void;
  /** Removes the line from the terminal. */
  clear(): void;
}

/**
 * A spinner with text and the seconds since `since`, drawn by cli-progress on the terminal's stderr;
 * undefined when stderr is not a terminal (callers print plain lines then).
 */
export function spinnerLine(io: CliIO, since = Date.now()): StatusLine | undefined {
  const stream = io.progressStream;
  if (!stream || !io.tty?.stderr) return undefined;
  const bar = new cliProgress.SingleBar({
    stream,
    format: (_options, _params, payload: { text: string }) => {
      const frame = FRAMES[Math.floor(Date.now() / 80) % FRAMES.length];
      const seconds = Math.floor((Date.now() - since) / 1000);
      return `${frame} ${payload.text} (${seconds}s)`;
    },
    clearOnComplete: true,
    hideCursor: false,
    linewrap: true, // a line longer than the terminal is cut, not wrapped (wrapped lines cannot be redrawn)
    gracefulExit: false, // Ctrl+C is ours to handle
    fps: 12,
    forceRedraw: true,
  });
  let started = false;
  return {
    set(text) {
      if (!started) {
        started = true;
        bar.start(1, 0, { text });
      } else bar.update({ text });
    },
    clear() {
      if (started) bar.stop();
      started = false;
    },
  };
}

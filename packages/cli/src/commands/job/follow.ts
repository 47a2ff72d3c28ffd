import { ConnectionLostError, type JobLogLine, type JobView, jobEnded, type Stream } from "@beta9/sdk";
import type { Context } from "../../context.ts";

/** Pauses before asking again after the log stream closed early; grows to the last. */
const RECONNECT_MS = [250, 500, 1000, 2000, 5000];
/** How often a queued job is asked why it waits, while its output is followed. */
const WAIT_CHECK_MS = 1000;

export interface Followed {
  /** The job as it ended; undefined when the person detached with Ctrl+C. */
  job: JobView | undefined;
  /** The last line's seq, for `b9 job logs ID -f --after N`. */
  lastSeq: number;
}

/**
 * Prints a job's log lines from after `after` until the job ends (or Ctrl+C): its stdout on stdout,
 * its stderr on stderr, or every line as JSON with `json`. A stream that closes before the job ended
 * (a gateway restart, a dropped connection) is opened again from the last line seen.
 */
export async function followLogs(
  ctx: Context,
  id: string,
  options: { after?: number; json?: boolean; follow: boolean; explainWaiting?: boolean },
): Promise<Followed> {
  const jobs = ctx.client().jobs;
  const print = linePrinter(ctx, options.json === true);
  let lastSeq = options.after ?? 0;
  let detached = false;
  let stream: Stream<JobLogLine> | undefined;
  let wake: (() => void) | undefined;
  const stopInterrupt = ctx.onInterrupt(() => {
    detached = true;
    stream?.abort();
    wake?.();
  });
  const watching = new AbortController();
  const watcher =
    options.explainWaiting && options.follow ? explainWaiting(ctx, id, watching.signal) : undefined;
  try {
    for (let tries = 0; ; ) {
      stream = jobs.logs(id, { after: lastSeq, follow: options.follow });
      try {
        for await (const line of stream) {
          print(line);
          lastSeq = line.seq;
          tries = 0;
        }
      } catch (error) {
        if (!(error instanceof ConnectionLostError) || !options.follow) throw error;
      }
      if (detached || !options.follow) return { job: undefined, lastSeq };
      const job = await jobs.get(id);
      if (jobEnded(job)) {
        // Lines written just before the end may reach the gateway after the follow closed.
        for await (const line of jobs.logs(id, { after: lastSeq })) {
          print(line);
          lastSeq = line.seq;
        }
        return { job, lastSeq };
      }
      const pause = RECONNECT_MS[Math.min(tries++, RECONNECT_MS.length - 1)] ?? 1000;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, pause);
      });
      if (detached) return { job: undefined, lastSeq };
    }
  } finally {
    stopInterrupt();
    watching.abort();
    await watcher;
  }
}

/**
 * While the job is queued, says why it waits (no machine fits now, …) each time the reason changes,
 * so a person following a job that does not start sees what holds it. Advisory: a failed check is
 * only skipped.
 */
async function explainWaiting(ctx: Context, id: string, signal: AbortSignal): Promise<void> {
  let said: string | null = null;
  while (!signal.aborted) {
    await new Promise<void>((resolve) => {
      const stop = () => {
        clearTimeout(timer);
        resolve();
      };
      // Removed with its pause: a job queued for hours must not pile listeners on the signal.
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", stop);
        resolve();
      }, WAIT_CHECK_MS);
      signal.addEventListener("abort", stop, { once: true });
    });
    if (signal.aborted) return;
    const job = await ctx
      .client()
      .jobs.get(id, { signal })
      .catch(() => undefined);
    if (!job || signal.aborted) continue;
    if (job.state !== "QUEUED") return;
    if (job.reason && job.reason !== said) ctx.note(`Waiting: ${job.reason}`);
    said = job.reason;
  }
}

/** Prints one log line; a new attempt (a retry) is announced on stderr first. */
function linePrinter(ctx: Context, json: boolean): (line: JobLogLine) => void {
  let attempt: number | undefined;
  return (line) => {
    if (json) return ctx.io.stdout(`${JSON.stringify(line)}\n`);
    if (attempt !== undefined && line.attempt !== attempt) ctx.note(`--- attempt ${line.attempt} ---`);
    attempt = line.attempt;
    if (line.stream === "stderr") ctx.io.stderr(`${line.line}\n`);
    else ctx.io.stdout(`${line.line}\n`);
  };
}

/** How to pick up a job again after detaching. */
export function followAgainHint(id: string, lastSeq: number): string {
  const after = lastSeq > 0 ? ` --after ${lastSeq}` : "";
  return `Detached; job ${id} keeps running. Follow it again with b9 job logs ${id} -f${after}, or stop it with b9 job cancel ${id}.`;
}

/**
 * What `b9 job run` exits with for an ended job: 0 when it succeeded, its own exit code when it
 * failed with one (1 to 255), else 1; with the sentence to print when it did not succeed.
 */
export function jobOutcome(job: JobView): { status: number; message?: string } {
  if (job.state === "SUCCEEDED") return { status: 0 };
  const why = job.reason ? `: ${job.reason}` : "";
  const message = `job ${job.id} ended ${job.state}${why}`;
  const code = job.exit_code;
  if (job.state === "FAILED" && code !== null && code >= 1 && code <= 255) return { status: code, message };
  return { status: 1, message };
}

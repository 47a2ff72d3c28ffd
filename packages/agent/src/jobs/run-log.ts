import { EventEmitter } from "node:events";
import { createWriteStream, readFileSync, renameSync, type WriteStream, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { JobRunEvent, JobRunState } from "@beta9/protocol";

/** Log lines kept per run, and their bytes: a job printing without end must not fill the agent's memory. */
export const DEFAULT_MAX_RUN_LOG_LINES = 100_000;
export const DEFAULT_MAX_RUN_LOG_BYTES = 64 * 1024 * 1024;

const ENDED: ReadonlySet<JobRunState> = new Set(["SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED"]);

/** What is kept of a run on disk besides its events, so the list survives an agent restart. */
export interface RunRecord {
  job_id: string;
  attempt: number;
  state: JobRunState;
  seq: number;
  started_at: number;
  /** The GPUs it was given, for the dashboard. */
  gpus: number[];
}

type NewEvent =
  | Omit<Extract<JobRunEvent, { type: "state" }>, "seq" | "at">
  | Omit<Extract<JobRunEvent, { type: "log" }>, "seq" | "at">
  | Omit<Extract<JobRunEvent, { type: "output" }>, "seq" | "at">;

/**
 * One run's events, numbered from 1, kept in memory and appended to the run's events.ndjson until
 * the gateway deletes the run. Log lines past the bound are dropped and counted; the count is told
 * in a log line of its own when the run ends. State and output events are always kept.
 */
export class RunLog extends EventEmitter<{ event: [JobRunEvent] }> {
  readonly dir: string;
  readonly record: RunRecord;
  readonly events: JobRunEvent[] = [];
  lastLine: string | null = null;
  /** Streams reading this run (routes.ts's follow): an agent that stops lets them end first. */
  readonly readers = new Set<Readable>();
  /** Appended asynchronously: a job printing fast must not block the agent on disk writes. */
  #file: WriteStream | undefined;
  #logLines = 0;
  #logBytes = 0;
  #dropped = 0;
  readonly #maxLines: number;
  readonly #maxBytes: number;

  constructor(
    dir: string,
    record: RunRecord,
    limits: { maxLines?: number | undefined; maxBytes?: number | undefined } = {},
  ) {
    super();
    this.setMaxListeners(0);
    this.dir = dir;
    this.record = record;
    this.#maxLines = limits.maxLines ?? DEFAULT_MAX_RUN_LOG_LINES;
    this.#maxBytes = limits.maxBytes ?? DEFAULT_MAX_RUN_LOG_BYTES;
  }

  get ended(): boolean {
    return ENDED.has(this.record.state);
  }

  /** A new run: its directory's record and an empty event file. */
  static create(dir: string, record: RunRecord, limits?: { maxLines?: number; maxBytes?: number }): RunLog {
    const log = new RunLog(dir, record, limits);
    writeFileSync(join(dir, "events.ndjson"), "");
    log.#save();
    return log;
  }

  /** A run a previous agent kept on disk; null when its files are unreadable. */
  static load(dir: string): RunLog | null {
    try {
      const record = JSON.parse(readFileSync(join(dir, "run.json"), "utf8")) as RunRecord;
      const log = new RunLog(dir, record);
      for (const line of readFileSync(join(dir, "events.ndjson"), "utf8").split("\n")) {
        if (line === "") continue;
        const event = JSON.parse(line) as JobRunEvent;
        log.events.push(event);
        if (event.type === "log") {
          log.#logLines++;
          log.lastLine = event.line;
        }
      }
      record.seq = log.events.at(-1)?.seq ?? 0;
      return log;
    } catch {
      return null;
    }
  }

  add(event: NewEvent): JobRunEvent | null {
    if (this.ended) return null;
    if (event.type === "log") {
      const bytes = Buffer.byteLength(event.line);
      if (this.#logLines >= this.#maxLines || this.#logBytes + bytes > this.#maxBytes) {
        this.#dropped++;
        return null;
      }
      this.#logLines++;
      this.#logBytes += bytes;
      this.lastLine = event.line;
    }
    if (event.type === "state" && ENDED.has(event.state) && this.#dropped > 0) {
      const note = this.#dropped;
      this.#dropped = 0;
      this.#push({
        type: "log",
        stream: "stderr",
        line: `[b9] ${note} log lines were dropped: the agent keeps at most ${this.#maxLines} lines or ${this.#maxBytes} bytes per run`,
      });
    }
    return this.#push(event);
  }

  #push(event: NewEvent): JobRunEvent {
    const full = { ...event, seq: this.record.seq + 1, at: Date.now() } as JobRunEvent;
    this.record.seq = full.seq;
    this.events.push(full);
    this.#file ??= createWriteStream(join(this.dir, "events.ndjson"), { flags: "a" });
    this.#file.write(`${JSON.stringify(full)}\n`);
    if (full.type === "state") {
      this.record.state = full.state;
      this.#save();
      if (this.ended) this.#file?.end();
    }
    this.emit("event", full);
    return full;
  }

  #save(): void {
    // Written whole then renamed: a crash leaves the old record or the new one, never half of one.
    const file = join(this.dir, "run.json");
    writeFileSync(`${file}.tmp`, JSON.stringify(this.record));
    renameSync(`${file}.tmp`, file);
  }
}

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "@beta9/test-utils";

/**
 * A real terminal for a real binary: one tmux server on its own socket (so parallel tests never
 * share one), one session running `node ARGS`, read back with capture-pane as a person would see it.
 * The pane stays after the program exits, so its exit status can be read.
 */
export class TmuxTerminal {
  readonly socket = `b9test-${process.pid}-${randomBytes(4).toString("hex")}`;
  readonly #socketPath: string;

  constructor(opts: {
    args: string[];
    env: Record<string, string>;
    columns: number;
    rows: number;
    cwd?: string;
  }) {
    try {
      execFileSync("tmux", ["-V"], { stdio: "ignore" });
    } catch {
      throw new Error("tmux is not installed: scripts/test installs it (apt-get install tmux)");
    }
    const conf = join(tempDir("b9-tmux-"), "tmux.conf");
    writeFileSync(conf, "set-option -g remain-on-exit on\n");
    this.#tmux(
      "-f",
      conf,
      "new-session",
      "-d",
      "-s",
      "main",
      "-x",
      String(opts.columns),
      "-y",
      String(opts.rows),
      ...Object.entries(opts.env).flatMap(([k, v]) => ["-e", `${k}=${v}`]),
      ...(opts.cwd ? ["-c", opts.cwd] : []),
      // Several arguments: tmux runs the program itself, no shell in between.
      process.execPath,
      ...opts.args,
    );
    this.#socketPath = this.#tmux("display-message", "-p", "#{socket_path}").trim();
  }

  #tmux(...args: string[]): string {
    return execFileSync("tmux", ["-L", this.socket, ...args], { encoding: "utf8" });
  }

  /** The screen as text, one string per row. */
  screen(): string {
    return this.#tmux("capture-pane", "-p", "-t", "main");
  }

  /** The program's pid (tmux runs it directly as the pane's process). */
  pid(): number {
    return Number(this.#tmux("display-message", "-p", "-t", "main", "#{pane_pid}").trim());
  }

  /** Null while the program runs, else its exit status. */
  exitStatus(): number | null {
    const [dead, status] = this.#tmux(
      "display-message",
      "-p",
      "-t",
      "main",
      "#{pane_dead} #{pane_dead_status}",
    )
      .trim()
      .split(" ");
    return dead === "1" ? Number(status) : null;
  }

  /** Keys as tmux names them: "q", "C-c". */
  press(key: string): void {
    this.#tmux("send-keys", "-t", "main", key);
  }

  resize(columns: number, rows: number): void {
    this.#tmux("resize-window", "-t", "main", "-x", String(columns), "-y", String(rows));
  }

  close(): void {
    try {
      this.#tmux("kill-server");
    } catch {
      // already gone
    }
    rmSync(this.#socketPath, { force: true });
  }
}

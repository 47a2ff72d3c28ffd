import { createInterface } from "node:readline";
import type { ChatMessage } from "@beta9/sdk";
import type { Context } from "../context.ts";
import { reportError } from "../report.ts";
import { chatTurn, type Sampling } from "./turn.ts";

export interface InteractiveOptions extends Sampling {
  model: string;
  system?: string | undefined;
}

const HELP = [
  "/exit or Ctrl+D   leave",
  "/clear            forget the conversation so far",
  "/help             this list",
  "Ctrl+C            stop an answer being generated",
].join("\n");

/**
 * The prompt loop of `b9 chat MODEL`: each line is a turn, the conversation so far is sent with it
 * (kept in memory only), and answers stream to stdout. On a terminal it shows a `>>>` prompt with
 * line editing; over a pipe (`-i`) it reads one turn per line, without prompts. Resolves to the exit
 * status: 1 when a turn failed, else 0.
 */
export async function interactiveChat(ctx: Context, o: InteractiveOptions): Promise<number> {
  const io = ctx.io;
  const client = ctx.client(); // a missing login is said before the prompt appears
  const terminal = io.tty?.stdin === true && io.stdoutStream !== undefined;
  const input = io.stdin;
  if (!input) return 0;
  const rl = createInterface({
    input,
    output: terminal ? io.stdoutStream : undefined,
    terminal,
    historySize: 100,
  });
  rl.setPrompt(">>> ");
  const start = (): ChatMessage[] => (o.system ? [{ role: "system", content: o.system }] : []);
  let history = start();
  let stopAnswer: (() => void) | undefined;
  let status = 0;

  // Ctrl+D (or the end of piped input) while an answer streams: the answer ends, then so does the loop.
  let closed = false;
  rl.on("close", () => {
    closed = true;
  });
  const prompt = () => {
    if (terminal && !closed) rl.prompt();
  };

  // On a terminal readline reads Ctrl+C as a key; over a pipe it arrives as SIGINT.
  const onCtrlC = () => {
    if (stopAnswer) return stopAnswer();
    if (rl.line) {
      rl.write(null, { ctrl: true, name: "u" }); // clears the line being typed, as shells do
      return;
    }
    if (!terminal) return rl.close();
    io.stderr("\n(to leave, type /exit or press Ctrl+D)\n");
    prompt();
  };
  rl.on("SIGINT", onCtrlC);
  const unhookSignal = ctx.onInterrupt(onCtrlC);

  if (terminal) {
    io.stderr(
      `Chatting with ${o.model} through ${client.baseUrl}. /exit or Ctrl+D leaves, /help for more.\n`,
    );
    prompt();
  }
  try {
    for await (const line of rl) {
      const text = line.trim();
      if (text === "/exit" || text === "/bye") break;
      if (text === "/clear") {
        history = start();
        io.stderr("(the conversation is forgotten)\n");
      } else if (text === "/help" || text === "/?") {
        io.stderr(`${HELP}\n`);
      } else if (text.startsWith("/")) {
        io.stderr(`unknown command ${text}; /help lists them\n`);
      } else if (text !== "") {
        status = Math.max(status, await turn(text));
      }
      prompt();
    }
  } finally {
    unhookSignal();
    rl.close();
  }
  if (terminal) io.stderr("\n");
  return status;

  async function turn(text: string): Promise<number> {
    history.push({ role: "user", content: text });
    try {
      const { completion } = await chatTurn(ctx, {
        model: o.model,
        messages: history,
        maxTokens: o.maxTokens,
        temperature: o.temperature,
        echo: true,
        interrupt: (abort) => {
          stopAnswer = abort;
          return () => {
            stopAnswer = undefined;
          };
        },
      });
      // A stopped answer stays in the conversation as far as it got; an empty one leaves no trace.
      if (completion.content) history.push({ role: "assistant", content: completion.content });
      else history.pop();
      return 0;
    } catch (error) {
      history.pop();
      return reportError(error, io, ["chat"]);
    }
  }
}

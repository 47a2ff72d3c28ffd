import type { ChatMessage, Completion } from "@beta9/sdk";
import type { Context } from "../context.ts";
import { watchColdStart } from "../progress/cold-start.ts";

export interface Sampling {
  maxTokens?: number | undefined;
  temperature?: number | undefined;
}

export interface TurnOptions extends Sampling {
  model: string;
  messages: ChatMessage[];
  /** Write the answer to stdout as it is generated (one-shot text and interactive chats do). */
  echo: boolean;
  /** Hooks up whatever means "stop" here (Ctrl+C) to `abort`; returns a function that unhooks it. */
  interrupt: (abort: () => void) => () => void;
}

export interface Turn {
  completion: Completion;
  /** Ctrl+C stopped the answer before its end. */
  interrupted: boolean;
}

/**
 * One request and its streamed answer: tokens go to stdout as they come, a cold start is shown on
 * stderr until the first one, and Ctrl+C stops the generation (the request is closed, so the gateway
 * stops the model too).
 */
export async function chatTurn(ctx: Context, o: TurnOptions): Promise<Turn> {
  const client = ctx.client();
  const stream = client.inference.chatStream({
    model: o.model,
    messages: o.messages,
    maxTokens: o.maxTokens,
    temperature: o.temperature,
  });
  const waiting = watchColdStart(ctx, client, o.model);
  const unhook = o.interrupt(() => stream.abort());
  let last = "\n";
  try {
    for await (const chunk of stream) {
      if (!chunk.content) continue;
      waiting.stop(true);
      if (o.echo) ctx.io.stdout(chunk.content);
      last = chunk.content;
    }
  } finally {
    waiting.stop(false);
    unhook();
  }
  // The next prompt, or the shell's, starts on a line of its own.
  if (o.echo && !last.endsWith("\n")) ctx.io.stdout("\n");
  return { completion: stream.result(), interrupted: stream.aborted };
}

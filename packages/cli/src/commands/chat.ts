import type { ChatMessage, Completion } from "@beta9/sdk";
import { type Command, InvalidArgumentError } from "commander";
import { interactiveChat } from "../chat/interactive.ts";
import { chatTurn, type Sampling } from "../chat/turn.ts";
import type { Context } from "../context.ts";
import { Interrupted, UserError } from "../user-error.ts";

interface Options extends Sampling {
  system?: string;
  json?: boolean;
  interactive?: boolean;
}

export function addChat(program: Command, ctx: Context): void {
  program
    .command("chat")
    .description("talk with a model: a prompt loop, or one answer for a prompt given or piped in")
    .argument("<model>", "the model's name, as deployed (b9 model list) or served by a machine")
    .argument("[prompt]", "ask this once, print the answer as it is generated, and exit")
    .option("--system <text>", "a system message that steers every answer")
    .option("--max-tokens <n>", "most tokens in an answer", maxTokens)
    .option("--temperature <t>", "0 (always the likeliest words) to 2 (most varied)", temperature)
    .option("-i, --interactive", "the prompt loop even when stdin is not a terminal: one turn per line")
    .option("--json", "print the whole answer as one JSON object when it ends (one-shot only; for scripts)")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  b9 chat smollm2-135m                          # a conversation; /exit or Ctrl+D to leave",
        '  b9 chat smollm2-135m "What is the capital of France?"',
        "  git diff | b9 chat llama3.2:1b --system 'Review this change.'",
        '  b9 chat smollm2-135m "Hi" --json | jq -r .content',
        "",
        "Needs a key with the inference (or admin) scope.",
      ].join("\n"),
    )
    .action(async (model: string, prompt: string | undefined, opts: Options) => {
      const sampling = { maxTokens: opts.maxTokens, temperature: opts.temperature };
      const stdinIsTerminal = ctx.io.tty?.stdin === true;
      if (prompt === undefined && (opts.interactive || stdinIsTerminal)) {
        if (opts.json) {
          throw new UserError(
            "--json prints one answer, so it needs a prompt",
            `give the prompt as an argument (b9 chat ${model} "…" --json) or pipe it in`,
          );
        }
        ctx.exitStatus = await interactiveChat(ctx, { model, system: opts.system, ...sampling });
        return;
      }

      const text = prompt ?? (await readAll(ctx.io.stdin));
      if (text.trim() === "") {
        throw new UserError(
          "no prompt to send",
          `give one as an argument (b9 chat ${model} "…"), pipe one in, or run b9 chat ${model} in a terminal to talk`,
        );
      }
      const messages: ChatMessage[] = [
        ...(opts.system ? [{ role: "system" as const, content: opts.system }] : []),
        { role: "user", content: text },
      ];
      const { completion, interrupted } = await chatTurn(ctx, {
        model,
        messages,
        ...sampling,
        echo: !opts.json,
        interrupt: (abort) => ctx.onInterrupt(abort),
      });
      if (interrupted) throw new Interrupted();
      if (opts.json) ctx.printJson(answerJson(completion));
    });
}

/** What `--json` prints: the answer, why it ended, and the tokens it took. */
function answerJson(c: Completion) {
  return {
    model: c.model,
    content: c.content,
    finish_reason: c.finishReason,
    usage: c.usage && {
      prompt_tokens: c.usage.promptTokens,
      completion_tokens: c.usage.completionTokens,
      total_tokens: c.usage.totalTokens,
    },
  };
}

async function readAll(stdin: NodeJS.ReadableStream | undefined): Promise<string> {
  if (!stdin) return "";
  let text = "";
  stdin.setEncoding("utf8");
  for await (const chunk of stdin) text += chunk;
  return text;
}

function maxTokens(value: string): number {
  const n = Number(value.trim());
  if (!/^\d+$/.test(value.trim()) || n < 1 || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError("--max-tokens takes a whole number of at least 1");
  }
  return n;
}

function temperature(value: string): number {
  const t = Number(value.trim());
  if (value.trim() === "" || !Number.isFinite(t) || t < 0 || t > 2) {
    throw new InvalidArgumentError("--temperature takes a number from 0 to 2, e.g. 0.7");
  }
  return t;
}

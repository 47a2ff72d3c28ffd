import { useEffect, useRef, useState } from "preact/hooks";
import { api, describe } from "../api.ts";
import { ErrorNote, Page, printable, usePoll } from "../components.tsx";

interface Turn {
  role: "user" | "assistant";
  content: string;
}

export function PlaygroundPage() {
  const models = usePoll((signal) => api.inference.listModels({ signal }), []);
  const [model, setModel] = useState("");
  const [prompt, setPrompt] = useState("");
  const [turns, setTurns] = useState<Turn[]>([]);
  const [answer, setAnswer] = useState<string>();
  const [rate, setRate] = useState<string>();
  const [error, setError] = useState<string>();
  // The engine's own default lets an answer run to the end of its context: the playground caps it.
  const [maxTokens, setMaxTokens] = useState("512");
  const [temperature, setTemperature] = useState("0.7");
  const stop = useRef<AbortController | undefined>(undefined);

  useEffect(() => {
    const first = models.data?.[0]?.id;
    if (!model && first) setModel(first);
  }, [models.data, model]);
  useEffect(() => () => stop.current?.abort(), []);

  const send = async (e: Event) => {
    e.preventDefault();
    const asked: Turn[] = [...turns, { role: "user", content: prompt }];
    setTurns(asked);
    setPrompt("");
    setAnswer("");
    setRate(undefined);
    setError(undefined);
    const ctl = new AbortController();
    stop.current = ctl;
    let text = "";
    let tokens = 0;
    let first: number | undefined;
    try {
      const stream = api.inference.chatStream(
        { model, messages: asked, maxTokens: Number(maxTokens), temperature: Number(temperature) },
        { signal: ctl.signal },
      );
      for await (const chunk of stream) {
        if (!chunk.content) continue;
        // Speed counts from the first token: loading the model is not generation.
        first ??= performance.now();
        tokens++;
        text += chunk.content;
        setAnswer(text);
        const seconds = (performance.now() - first) / 1000;
        if (seconds > 0) setRate(`${(tokens / seconds).toFixed(1)} tokens/s`);
      }
      const usage = stream.result().usage;
      if (usage && first !== undefined) {
        const seconds = Math.max((performance.now() - first) / 1000, 0.001);
        setRate(
          `${(usage.completionTokens / seconds).toFixed(1)} tokens/s · ${usage.completionTokens} tokens`,
        );
      }
    } catch (err) {
      if (!ctl.signal.aborted) setError(describe(err));
    } finally {
      stop.current = undefined;
      setTurns([...asked, { role: "assistant", content: text }]);
      setAnswer(undefined);
    }
  };
  const busy = answer !== undefined;

  return (
    <Page title="Playground">
      <ErrorNote error={models.error} />
      <div class="chat panel">
        {turns.length === 0 && !busy && (
          <p class="hint">Pick a model and ask something: the answer streams in as it is written.</p>
        )}
        {(turns.length > 0 || busy) && (
          <ol class="turns" aria-live="polite" aria-label="Conversation">
            {turns.map((t, i) => (
              <li key={i} class={`turn ${t.role}`}>
                <span class="who-said">{t.role === "user" ? "You" : printable(model)}</span>
                <p>{t.content}</p>
              </li>
            ))}
            {busy && (
              <li class="turn assistant" aria-busy="true">
                <span class="who-said">{printable(model)}</span>
                <p data-testid="answer">{answer || "…"}</p>
              </li>
            )}
          </ol>
        )}
        <p class="rate" data-testid="rate">
          {rate ?? ""}
        </p>
        <ErrorNote error={error} />
        <form onSubmit={(e) => void send(e)} class="ask">
          <label for="model">Model</label>
          <select id="model" value={model} onChange={(e) => setModel(e.currentTarget.value)}>
            {(models.data ?? []).map((m) => (
              <option key={m.id} value={m.id}>
                {printable(m.id)}
              </option>
            ))}
          </select>
          <label for="prompt">Message</label>
          <textarea
            id="prompt"
            rows={3}
            required
            value={prompt}
            onInput={(e) => setPrompt(e.currentTarget.value)}
          />
          <div class="settings">
            <NumberSetting
              label="Max tokens"
              min={1}
              max={32768}
              step={1}
              value={maxTokens}
              onInput={setMaxTokens}
            />
            <NumberSetting
              label="Temperature"
              min={0}
              max={2}
              step={0.1}
              value={temperature}
              onInput={setTemperature}
            />
          </div>
          <div class="actions">
            {busy ? (
              <button type="button" class="secondary" onClick={() => stop.current?.abort()}>
                Stop
              </button>
            ) : (
              <button type="submit" disabled={!model}>
                Send
              </button>
            )}
            {turns.length > 0 && !busy && (
              <button type="button" class="secondary" onClick={() => setTurns([])}>
                New chat
              </button>
            )}
          </div>
        </form>
      </div>
    </Page>
  );
}

/** One of the answer's settings beside the message: a labelled number, required, within its range. */
function NumberSetting(p: {
  label: string;
  min: number;
  max: number;
  step: number;
  value: string;
  onInput: (value: string) => void;
}) {
  return (
    <label>
      {p.label}
      <input
        type="number"
        min={p.min}
        max={p.max}
        step={p.step}
        required
        value={p.value}
        onInput={(e) => p.onInput(e.currentTarget.value)}
      />
    </label>
  );
}

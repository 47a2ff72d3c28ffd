import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { describe } from "./api.ts";

/**
 * Text from the pool (names, log lines) as a person should see it: control characters (ANSI escapes
 * included) in caret notation, as `cat -v` shows them ("^[[31m"). Preact renders it as a text node,
 * never as HTML.
 */
export function printable(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly the characters replaced
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, (c) =>
    c === "\u007f" ? "^?" : `^${String.fromCharCode(c.charCodeAt(0) + 64)}`,
  );
}

export interface Loaded<T> {
  data: T | undefined;
  error: string | undefined;
  reload: () => void;
}

/** Calls `load` now and every `everyMs` (live pages), keeping the last good answer beside the last error. */
export function usePoll<T>(
  load: (signal: AbortSignal) => Promise<T>,
  deps: unknown[],
  everyMs?: number,
): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => {
    const ctl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let first = true;
    const run = async () => {
      // A tab nobody looks at does not keep the gateway busy: it refreshes when shown again.
      if (!first && document.hidden && everyMs) {
        timer = setTimeout(run, everyMs);
        return;
      }
      first = false;
      try {
        const value = await load(ctl.signal);
        if (ctl.signal.aborted) return;
        setData(value);
        setError(undefined);
      } catch (e) {
        if (!ctl.signal.aborted) setError(describe(e));
      }
      if (everyMs && !ctl.signal.aborted) timer = setTimeout(run, everyMs);
    };
    void run();
    return () => {
      ctl.abort();
      clearTimeout(timer);
    };
  }, [...deps, tick]);
  return { data, error, reload };
}

export function ErrorNote(props: { error: string | undefined }) {
  if (!props.error) return null;
  return (
    <p class="error" role="alert">
      {props.error}
    </p>
  );
}

export function Page(props: { title: string; actions?: ComponentChildren; children: ComponentChildren }) {
  useEffect(() => {
    document.title = `${props.title} · Beta9`;
  }, [props.title]);
  return (
    <>
      <header class="page-head">
        <h1>{props.title}</h1>
        {props.actions && <div class="actions">{props.actions}</div>}
      </header>
      {props.children}
    </>
  );
}

/** A wide table that scrolls sideways on a phone; focusable so a keyboard can scroll it too. */
export function TableBox(props: { label: string; children: ComponentChildren }) {
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must be reachable by keyboard
    <section class="table-box" aria-label={props.label} tabIndex={0}>
      <table>{props.children}</table>
    </section>
  );
}

export function Stat(props: { label: string; value: ComponentChildren; hint?: string }) {
  return (
    <div class="stat">
      <div class="stat-value">{props.value}</div>
      <div class="stat-label">{props.label}</div>
      {props.hint && <div class="stat-hint">{props.hint}</div>}
    </div>
  );
}

export function StatusBadge(props: { status: string }) {
  return <span class={`badge badge-${props.status.toLowerCase()}`}>{printable(props.status)}</span>;
}

/**
 * A button that asks first: a modal dialog says what will happen, and only its confirm button acts.
 * Failures are shown in the dialog, which stays open.
 */
export function ConfirmButton(props: {
  label: string;
  /** What a screen reader says when the visible label alone is ambiguous ("Revoke laptop" for "Revoke"). */
  name?: string;
  question: string;
  confirm: string;
  danger?: boolean;
  onConfirm: () => Promise<unknown>;
  /** Fields asked for in the dialog (limits to set), above its buttons. */
  children?: ComponentChildren;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const act = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await props.onConfirm();
      dialog.current?.close();
    } catch (e) {
      setError(describe(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button
        type="button"
        class={props.danger ? "danger" : "secondary"}
        aria-label={props.name}
        onClick={() => dialog.current?.showModal()}
      >
        {props.label}
      </button>
      <dialog ref={dialog} aria-label={props.name ?? props.label}>
        <p>{props.question}</p>
        {props.children}
        <ErrorNote error={error} />
        <div class="actions">
          <button type="button" class="secondary" onClick={() => dialog.current?.close()}>
            Cancel
          </button>
          <button
            type="button"
            class={props.danger ? "danger" : ""}
            disabled={busy}
            onClick={() => void act()}
          >
            {props.confirm}
          </button>
        </div>
      </dialog>
    </>
  );
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? printable(iso) : d.toLocaleString();
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
}

export function num(n: number | null | undefined, digits = 0): string {
  if (n === null || n === undefined) return "—";
  return n.toLocaleString(undefined, { maximumFractionDigits: digits });
}

/** A limit as typed: empty for none (null), else a positive number. */
export function limitOf(text: string): number | null {
  return text.trim() === "" ? null : Number(text);
}

/**
 * Limits set in a confirmation dialog: one number field per limit, empty for none; `save` gets the
 * new values (null for none).
 */
export function LimitsButton<K extends string>(props: {
  /** The accessible name: what the limits are of ("Limits of laptop"); the button shows "Limits". */
  label: string;
  fields: Record<K, { label: string; value: number | null }>;
  save: (limits: Record<K, number | null>) => Promise<unknown>;
}) {
  const keys = Object.keys(props.fields) as K[];
  const initial = () => Object.fromEntries(keys.map((k) => [k, props.fields[k].value?.toString() ?? ""]));
  const [values, setValues] = useState<Record<string, string>>(initial);
  const id = props.label.replace(/[^a-zA-Z0-9]+/g, "-");
  return (
    <ConfirmButton
      label="Limits"
      name={props.label}
      question="Empty means no limit."
      confirm="Save"
      onConfirm={() =>
        props.save(
          Object.fromEntries(keys.map((k) => [k, limitOf(values[k] ?? "")])) as Record<K, number | null>,
        )
      }
    >
      <div class="limits">
        {keys.map((k) => (
          <label key={k} for={`${id}-${k}`}>
            {props.fields[k].label}
            <input
              id={`${id}-${k}`}
              type="number"
              min="0"
              step="any"
              placeholder="no limit"
              value={values[k]}
              onInput={(e) => setValues({ ...values, [k]: e.currentTarget.value })}
            />
          </label>
        ))}
      </div>
    </ConfirmButton>
  );
}

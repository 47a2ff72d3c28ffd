import type { PullProgress } from "@beta9/protocol";

/*
 * A pull or conversion that concurrent requests share (the same repository, the same GGUF to make):
 * it runs once, every caller sees its progress, and it stops only when the last caller has left.
 */

export type Progress = (p: PullProgress) => void;

/** One run that concurrent callers share: every caller sees its progress; it stops when all have left. */
export interface SharedRun<T> {
  promise: Promise<T>;
  controller: AbortController;
  listeners: Set<Progress>;
}

/**
 * Join the run under `key`, or start it: the caller's progress is added to the run's listeners, and
 * its signal takes it out; the last caller to leave stops the run and answers once it has cleaned up.
 */
export function joinRun<T>(
  map: Map<string, SharedRun<T>>,
  key: string,
  caller: { signal?: AbortSignal | undefined; onProgress: Progress },
  run: (signal: AbortSignal, emit: Progress) => Promise<T>,
): Promise<T> {
  let entry = map.get(key);
  const listener: Progress = (p) => caller.onProgress(p);
  if (entry === undefined || entry.controller.signal.aborted) {
    const created: SharedRun<T> = {
      promise: Promise.resolve(undefined as T),
      controller: new AbortController(),
      listeners: new Set([listener]),
    };
    map.set(key, created);
    created.promise = run(created.controller.signal, (p) => {
      for (const l of created.listeners) l(p);
    }).finally(() => {
      if (map.get(key) === created) map.delete(key);
    });
    entry = created;
  } else entry.listeners.add(listener);
  const shared = entry;
  const { signal } = caller;
  return new Promise<T>((resolve, reject) => {
    const leave = () => {
      signal?.removeEventListener("abort", onAbort);
      shared.listeners.delete(listener);
    };
    function onAbort() {
      leave();
      if (shared.listeners.size === 0) shared.controller.abort(signal?.reason);
      else reject(signal?.reason);
    }
    shared.promise.then(
      (v) => {
        leave();
        resolve(v);
      },
      (err: unknown) => {
        leave();
        reject(err);
      },
    );
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Run `start` once no run under `key` is going on: two conversions of one key never overlap, and the
 * second one finds (and reuses) what the first one made.
 */
export async function afterOthers<T>(
  runs: Map<string, Promise<T>>,
  key: string,
  start: () => Promise<T>,
): Promise<T> {
  for (let running = runs.get(key); running; running = runs.get(key)) await running.catch(() => {});
  const run = start();
  runs.set(key, run);
  try {
    return await run;
  } finally {
    if (runs.get(key) === run) runs.delete(key);
  }
}

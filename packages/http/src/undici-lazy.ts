import type * as Undici from "undici";

/*
 * undici loaded at its first use, for a program that may never make a request with it: an idle agent
 * (no download, no request proxied to an engine) then never loads it. Loaded and initialised, undici is
 * ~3 MB of an idle agent's memory (bench/engine/README.md, seventh pass), against a goal of 80 MB.
 */

let loaded: typeof Undici | undefined;
let loading: Promise<typeof Undici> | undefined;

/**
 * The pinned undici, loaded at the first call, which also makes it the one that serves requests given
 * no dispatcher (installPinnedUndici: Node's bundled copy would otherwise).
 */
export function loadUndici(): Promise<typeof Undici> {
  if (loaded) return Promise.resolve(loaded);
  loading ??= Promise.all([import("undici"), import("./undici-global.ts")]).then(([module, global]) => {
    global.installPinnedUndici();
    // undici is CommonJS: its exports object is the default export, under Node as in a bundle (where
    // esbuild gives a dynamically imported CommonJS module no named exports).
    loaded = (module.default ?? module) as unknown as typeof Undici;
    return loaded;
  });
  return loading;
}

/** The pinned undici once loadUndici() has resolved, else undefined: for a hot path that must not await. */
export function loadedUndici(): typeof Undici | undefined {
  return loaded;
}

/** A dispatcher made from undici at its first use (get()); nothing is loaded before that. */
export class LazyDispatcher {
  readonly #make: (undici: typeof Undici) => Undici.Dispatcher;
  #made: Promise<Undici.Dispatcher> | undefined;

  constructor(make: (undici: typeof Undici) => Undici.Dispatcher) {
    this.#make = make;
  }

  get(): Promise<Undici.Dispatcher> {
    this.#made ??= loadUndici().then(this.#make);
    return this.#made;
  }
}

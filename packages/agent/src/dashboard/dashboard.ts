import { useWindowSize } from "ink";
import React, { useSyncExternalStore } from "react";
import { useKeyBindings } from "./keys.ts";
import { Layout } from "./layout.ts";
import type { DashboardStore } from "./store.ts";

/** The live dashboard: the store's latest snapshot, laid out for the terminal's current size. */
export function Dashboard({ store, onQuit }: { store: DashboardStore; onQuit: () => void }) {
  const model = useSyncExternalStore(store.subscribe, store.getSnapshot);
  const { columns, rows } = useWindowSize();
  useKeyBindings({ quit: onQuit });
  return React.createElement(Layout, { model, columns, rows });
}

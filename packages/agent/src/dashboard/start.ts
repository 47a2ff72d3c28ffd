import type { Usage } from "@beta9/protocol";
import { render } from "ink";
import React from "react";
import { Dashboard } from "./dashboard.ts";
import type { DashboardSources } from "./model.ts";
import { DashboardStore } from "./store.ts";

export interface DashboardHandle {
  /** Show that the agent is shutting down. */
  stopping(): void;
  /** Give the terminal back as it was. */
  close(): Promise<void>;
}

/**
 * Draw the dashboard on this process's terminal (the alternate screen, so the shell comes back
 * untouched on exit). Keys are handled here; q and Ctrl+C call `onQuit`, which stops the agent.
 */
export function startDashboard(opts: {
  sources: DashboardSources;
  sampleUsage?: () => Promise<Usage>;
  onQuit: () => void;
}): DashboardHandle {
  const store = new DashboardStore(opts.sources, opts.sampleUsage ? { sampleUsage: opts.sampleUsage } : {});
  store.start();
  const ink = render(React.createElement(Dashboard, { store, onQuit: opts.onQuit }), {
    // Ctrl+C must stop engines first, as SIGINT does; Ink would only unmount.
    exitOnCtrlC: false,
    // Ink counts CI as non-interactive even on a terminal; we only get here with one.
    interactive: true,
    alternateScreen: true,
  });
  let closed: Promise<void> | undefined;
  return {
    stopping: () => store.setStopping(),
    close() {
      closed ??= (async () => {
        store.stop();
        ink.unmount();
        await ink.waitUntilExit().catch(() => {});
      })();
      return closed;
    },
  };
}

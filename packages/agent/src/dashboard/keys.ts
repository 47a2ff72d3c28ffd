import { useInput } from "ink";

/** Every key the dashboard answers, in one place. */
export function useKeyBindings(actions: { quit: () => void }): void {
  useInput((input, key) => {
    if (input === "q" || (key.ctrl && input === "c")) actions.quit();
  });
}

import { Beta9Error } from "@beta9/protocol";
import type { ChooseEngine } from "../../inference/manager.ts";
import { chooseEngine, EngineChoiceError } from "../choose.ts";

/** As the agent chooses for a start that names its engine: that engine, or a refusal (no_engine). */
export const chooseNamed: ChooseEngine = ({ format, hardware, detections, preferred }) => {
  try {
    return chooseEngine({ format, hardware, detections, prefer: preferred, strict: preferred !== undefined })
      .engine;
  } catch (err) {
    if (err instanceof EngineChoiceError) throw new Beta9Error("no_engine", err.message);
    throw err;
  }
};

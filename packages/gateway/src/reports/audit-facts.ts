import type { Store } from "@beta9/store";
import { verifyChains } from "../audit/verify.ts";
import type { AiActSources } from "./ai-act.ts";

/** Events read at most per question: a report of a busier period says where it stopped. */
const MAX_EVENTS = 100_000;

/**
 * What the AI Act pack reads from the audit log: the chains' verification with their last signed
 * checkpoints, the workspace's security events (refused credentials, forbidden attempts), and who
 * made each deployment.
 */
export function auditFacts(
  store: Store,
  /** This gateway's checkpoint key: a checkpoint counts only when it signed it. */
  publicKey?: string,
): Pick<AiActSources, "verifyAudit" | "securityEvents" | "deployers"> {
  return {
    verifyAudit: () => verifyChains(store, publicKey),
    async securityEvents(workspaceId, since, until) {
      const rows = await store.audit.list({ workspaceId, since, until, limit: MAX_EVENTS });
      // Inference and job metadata are usage, counted from the usage rows; the rest refused is security.
      return rows.filter(
        (r) =>
          r.action.startsWith("auth.") ||
          (r.outcome === "refused" && !r.action.startsWith("inference.") && !r.action.startsWith("job.")),
      );
    },
    async deployers(workspaceId) {
      const rows = await store.audit.list({ workspaceId, action: "deployment.create", limit: MAX_EVENTS });
      const by = new Map<string, string>();
      // The latest ok creation of each name is the deployment there now.
      const keyNames = new Map<string, string | null>();
      for (const r of rows.sort((a, b) => Number(a.at) - Number(b.at))) {
        if (r.outcome !== "ok" || !r.resource?.startsWith("deployment:")) continue;
        by.set(r.resource.slice("deployment:".length), await actorText(store, r, keyNames));
      }
      return by;
    },
  };
}

/**
 * Who an event's actor is, for a person: a key by its name with its id ("key ci-deployer (key_…)"),
 * its id alone once the key is gone; an identity as recorded; anything else as type:id.
 */
async function actorText(
  store: Store,
  r: { actor_type: string; actor_id: string | null },
  keyNames: Map<string, string | null>,
): Promise<string> {
  const id = r.actor_id ?? "unknown";
  if (r.actor_type !== "key" || r.actor_id === null) return `${r.actor_type}:${id}`;
  if (!keyNames.has(id)) keyNames.set(id, (await store.keys.get(id))?.name ?? null);
  const name = keyNames.get(id);
  return name ? `key ${name} (${id})` : `key:${id}`;
}

import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "@beta9/http";
import { TOKEN_PREFIX } from "@beta9/protocol";
import type { Store } from "@beta9/store";
import { OPERATOR_WORKSPACE } from "./auth/api-keys.ts";
import { hashSecret, newId, newSecret } from "./auth/secrets.ts";

/**
 * First start on an empty store: workspace `default`, pool `external`, and an admin API key that is
 * printed once and written to DATA_DIR/admin-key (0600). Later starts change nothing. Safe when two
 * gateway replicas start at once on one PostgreSQL: one claims the bootstrap, the other skips.
 */
export async function bootstrap(store: Store, dataDir: string, log: Logger): Promise<{ adminKey?: string }> {
  if (await store.settings.get("bootstrapped_at")) return {};
  const now = Date.now();
  const secret = newSecret(TOKEN_PREFIX.apiKey);
  const created = await store.transaction(async (tx) => {
    if (!(await tx.settings.claim("bootstrapped_at", String(now)))) return false;
    const workspaceId = newId("ws_");
    await tx.workspaces.insert({ id: workspaceId, name: OPERATOR_WORKSPACE, created_at: now });
    await tx.pools.insert({
      name: "external",
      description: "machines that joined with b9agent",
      created_at: now,
    });
    await tx.keys.insert({
      id: newId("key_"),
      name: "admin",
      workspace_id: workspaceId,
      scopes: "admin",
      key_hash: hashSecret(secret),
      prefix: secret.slice(0, 10),
      revoked_at: null,
      created_at: now,
      last_used_at: null,
      rpm_limit: null,
      tpm_limit: null,
    });
    return true;
  });
  if (!created) return {};
  await mkdir(dataDir, { recursive: true });
  const file = join(dataDir, "admin-key");
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  log.info({ file }, "created workspace default, pool external and an admin API key");
  return { adminKey: secret };
}

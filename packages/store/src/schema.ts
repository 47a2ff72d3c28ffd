import type { Generated } from "kysely";

/*
 * Table shapes. Times are integer milliseconds since the epoch in both dialects (PostgreSQL `bigint`
 * is parsed to a JS number), so rows read the same whatever the store. Flags are nullable timestamps
 * rather than booleans, which SQLite lacks.
 */

export interface WorkspaceTable {
  id: string;
  name: string;
  created_at: number;
}

export interface PoolTable {
  name: string;
  description: string;
  created_at: number;
}

export interface JoinTokenTable {
  id: string;
  token_hash: string;
  pool: string;
  description: string;
  expires_at: number;
  uses_total: number;
  uses_left: number;
  revoked_at: number | null;
  created_at: number;
}

export interface MachineTable {
  id: string;
  name: string;
  pool: string;
  hostname: string;
  agent_version: string;
  /** JSON of protocol `Hardware`. */
  hardware: string;
  credential_hash: string;
  /** "channel" or "keepalive": how the agent talks to us. */
  protocol: string;
  cordoned_at: number | null;
  draining_at: number | null;
  joined_at: number;
  last_heartbeat_at: number | null;
  join_token_id: string | null;
}

export interface ApiKeyTable {
  id: string;
  name: string;
  workspace_id: string;
  /** Comma-separated scopes. */
  scopes: string;
  key_hash: string;
  prefix: string;
  revoked_at: number | null;
  created_at: number;
  last_used_at: number | null;
}

export interface SettingTable {
  key: string;
  value: string;
}

export interface Database {
  workspaces: WorkspaceTable;
  pools: PoolTable;
  join_tokens: JoinTokenTable;
  machines: MachineTable;
  api_keys: ApiKeyTable;
  settings: SettingTable;
}

export type { Generated };

// oidc-provider ships no types; what the test identity provider uses of it.
declare module "oidc-provider" {
  import type { IncomingMessage, ServerResponse } from "node:http";

  interface OidcClient {
    grantTypeAllowed(type: string): boolean;
    redirectUriAllowed(uri: string): boolean;
  }
  interface Account {
    accountId: string;
    claims(): Promise<{ sub: string } & Record<string, unknown>>;
  }
  interface Configuration {
    clients?: Record<string, unknown>[];
    jwks?: { keys: Record<string, unknown>[] };
    features?: Record<string, { enabled: boolean }>;
    scopes?: string[];
    claims?: Record<string, string[]>;
    conformIdTokenClaims?: boolean;
    pkce?: { required: () => boolean };
    issueRefreshToken?: (ctx: unknown, client: OidcClient) => Promise<boolean>;
    ttl?: Record<string, number>;
    findAccount?: (ctx: unknown, sub: string) => Promise<Account | undefined>;
  }
  export default class Provider {
    constructor(issuer: string, configuration: Configuration);
    Client: { prototype: OidcClient };
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
  }
}

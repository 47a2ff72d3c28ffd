/** A mistake the person can fix; printed as `error: message` and the next step, never with a stack. */
export class UserError extends Error {
  override name = "UserError";
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.hint = hint;
  }
}

export const LOGIN_HINT = "run b9 login --gateway URL --api-key KEY or set BETA9_GATEWAY and BETA9_API_KEY";

export const SSO_LOGIN_HINT = "run b9 login --sso to sign in again";

/** The person pressed Ctrl+C and what was running stopped: exit 130, as shells expect, with no error. */
export class Interrupted extends Error {
  override name = "Interrupted";
  constructor() {
    super("interrupted");
  }
}

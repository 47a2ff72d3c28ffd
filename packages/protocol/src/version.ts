export const BETA9_VERSION = "0.1.0";

/**
 * The agent protocol (join, channel, heartbeats) this code speaks. Raised when a change would
 * mislead the other side; a gateway accepts agents from AGENT_PROTOCOL_MIN up to its own.
 */
export const AGENT_PROTOCOL: number = 2;
/** The oldest agent protocol a gateway still accepts. */
export const AGENT_PROTOCOL_MIN: number = 1;
/** Sent by the agent on the channel's upgrade: its protocol and its version. */
export const AGENT_PROTOCOL_HEADER = "x-beta9-agent-protocol";
export const AGENT_VERSION_HEADER = "x-beta9-agent-version";

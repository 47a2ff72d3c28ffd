export * from "./cluster.ts";
export { Host } from "./host.ts";
export { clusterUnsupported } from "./ip.ts";
export { GATEWAY_ARGS, LIVENESS } from "./liveness.ts";
export { type ClusterDatabase, clusterDatabase } from "./postgres.ts";

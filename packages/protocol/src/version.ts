export const BETA9_VERSION = "0.1.0";

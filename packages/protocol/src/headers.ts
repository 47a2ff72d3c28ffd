/** The header that carries a request's id from the gateway to the agent (and back to the client). */
export const REQUEST_ID_HEADER = "x-request-id";

// Surge's TypeScript SDK: every path, parameter, body and answer typed
// from the document the server serves (`openapi.json`, generated into
// `schema.d.ts` by openapi-typescript), calls made by openapi-fetch.
//
// The one rule it adds is the client rule of the README ("Clients and
// connections"): a request the server may safely see twice is sent once
// more when the connection it went out on was lost before an answer (a
// kept-alive connection the server or a proxy closed at that moment). A
// method that is idempotent by HTTP (GET, HEAD, OPTIONS, PUT, DELETE) or a
// POST carrying an `Idempotency-Key` qualifies; anything else is reported
// to the caller, who knows whether it may be repeated.

import createClient, { type Client } from "openapi-fetch";
import type { paths } from "./schema.js";

export type { paths, components, operations } from "./schema.js";

/** Methods HTTP defines as idempotent. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

/** Whether the server may see `request` twice without a second effect. */
export function isRepeatable(request: Request): boolean {
  return IDEMPOTENT.has(request.method) || request.headers.has("Idempotency-Key");
}

/**
 * Whether `error` is a connection lost before an answer: `fetch` rejects
 * with a `TypeError` on a network failure ("Failed to fetch" in browsers,
 * "fetch failed" with a cause such as `ECONNRESET` or `UND_ERR_SOCKET` in
 * Node.js). An abort (`AbortError`) is not one.
 */
export function isConnectionLost(error: unknown): boolean {
  return error instanceof TypeError;
}

export type Fetch = (request: Request) => Promise<Response>;

/**
 * `inner`, sending a repeatable request once more (and no more) when its
 * connection was lost; anything else, and a second loss, rejects as
 * `fetch` did.
 */
export function retryOnReset(inner: Fetch = (r) => globalThis.fetch(r)): Fetch {
  return async (request) => {
    if (!isRepeatable(request)) {
      return inner(request);
    }
    // A body can be read once: the copy is made before the first send.
    const again = request.clone();
    try {
      return await inner(request);
    } catch (error) {
      if (!isConnectionLost(error) || request.signal.aborted) {
        throw error;
      }
      return inner(again);
    }
  };
}

export interface SurgeOptions {
  /** Where the server is, e.g. `https://shop.example` (paths start with `/api/v1`). */
  baseUrl: string;
  /** The access token to send, read on every request (none: anonymous). */
  token?: () => string | undefined;
  /** The `fetch` to use underneath (default: the global one). */
  fetch?: Fetch;
}

export type SurgeClient = Client<paths>;

/** A typed client for one Surge server. */
export function createSurgeClient(options: SurgeOptions): SurgeClient {
  const client = createClient<paths>({
    baseUrl: options.baseUrl,
    fetch: retryOnReset(options.fetch),
  });
  const token = options.token;
  if (token) {
    client.use({
      onRequest({ request }) {
        const t = token();
        if (t) {
          request.headers.set("Authorization", `Bearer ${t}`);
        }
        return request;
      },
    });
  }
  return client;
}

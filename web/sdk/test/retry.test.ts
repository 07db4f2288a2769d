// The SDK's one retry, over real sockets: a server that resets the
// connection of the first request it gets (as a kept-alive connection
// closed by the server or a proxy at that moment does), then answers.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { createSurgeClient } from "../src/index.js";

interface Seen {
  method: string;
  url: string;
  key: string | undefined;
  body: string;
}

/** A server that resets the first `resets` requests' connections, then answers 200 `{"ok":true}`. */
async function resetting(resets: number) {
  const seen: Seen[] = [];
  let left = resets;
  const server = createServer(async (req: IncomingMessage, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    seen.push({
      method: req.method ?? "",
      url: req.url ?? "",
      key: req.headers["idempotency-key"] as string | undefined,
      body,
    });
    if (left > 0) {
      left -= 1;
      req.socket.resetAndDestroy();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ ok: true }));
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as AddressInfo;
  const client = createSurgeClient({ baseUrl: `http://127.0.0.1:${port}`, token: () => "t0k" });
  return {
    seen,
    client,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

test("a GET whose connection is reset is sent once more and answered", async () => {
  const s = await resetting(1);
  try {
    const { response } = await s.client.GET("/api/v1/products");
    assert.equal(response.status, 200);
    assert.deepEqual(
      s.seen.map((r) => `${r.method} ${r.url}`),
      ["GET /api/v1/products", "GET /api/v1/products"],
    );
  } finally {
    await s.close();
  }
});

test("a POST with an Idempotency-Key is sent again, same key and same body", async () => {
  const s = await resetting(1);
  try {
    const { response } = await s.client.POST("/api/v1/flash-sales/{id}/claims", {
      params: { path: { id: "sale-1" }, header: { "Idempotency-Key": "claim-7" } },
      body: { quantity: 1 },
    });
    assert.equal(response.status, 200);
    assert.equal(s.seen.length, 2);
    for (const r of s.seen) {
      assert.equal(r.key, "claim-7");
      assert.deepEqual(JSON.parse(r.body), { quantity: 1 });
    }
  } finally {
    await s.close();
  }
});

test("a POST without a key is not repeated: the caller hears of the reset", async () => {
  const s = await resetting(1);
  try {
    await assert.rejects(
      s.client.POST("/api/v1/flash-sales/{id}/claims", {
        params: { path: { id: "sale-1" } },
        body: { quantity: 1 },
      }),
      TypeError,
    );
    assert.equal(s.seen.length, 1, "sent once");
  } finally {
    await s.close();
  }
});

test("one retry only: a second reset rejects", async () => {
  const s = await resetting(2);
  try {
    await assert.rejects(s.client.DELETE("/api/v1/cart/remove-coupon"), TypeError);
    assert.equal(s.seen.length, 2, "sent twice, not more");
  } finally {
    await s.close();
  }
});

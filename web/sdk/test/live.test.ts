// The SDK against a real `surge serve` (built by the test command before
// this runs; SURGE_BIN names another binary): the generated types describe
// what the server answers, and a token source signs requests.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createSurgeClient } from "../src/index.js";

const bin =
  process.env.SURGE_BIN ?? fileURLToPath(new URL("../../../../target/debug/surge", import.meta.url));

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, "127.0.0.1", ok));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((ok) => s.close(() => ok()));
  return port;
}

test("register, sign in and read the profile through the typed client", async () => {
  const dir = mkdtempSync(join(tmpdir(), "surge-sdk-"));
  const port = await freePort();
  const server = spawn(bin, ["serve", "--addr", `127.0.0.1:${port}`, "--data-dir", dir], {
    // The metrics listener on a free port too: its default (9464) may be
    // taken by another Surge on this machine.
    env: {
      ...process.env,
      SURGE_LOG: "error",
      SURGE_HASH_MEMORY_KIB: "8",
      SURGE_HASH_ITERATIONS: "1",
      SURGE_METRICS_ADDR: "127.0.0.1:0",
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  try {
    let token: string | undefined;
    const api = createSurgeClient({ baseUrl: `http://127.0.0.1:${port}`, token: () => token });
    // Up within 30 s (bounded).
    for (let i = 0; ; i++) {
      try {
        if ((await api.GET("/api/v1/products")).response.ok) break;
      } catch {
        // not listening yet
      }
      assert.ok(i < 300, "surge serve did not come up");
      await new Promise((ok) => setTimeout(ok, 100));
    }
    const email = "sdk@example.com";
    const password = "correct horse battery";
    const reg = await api.POST("/api/v1/auth/register", { body: { email, password, name: "Sdk" } });
    assert.equal(reg.response.status, 201, JSON.stringify(reg.error));
    const login = await api.POST("/api/v1/auth/login", { body: { email, password } });
    assert.ok(login.data, JSON.stringify(login.error));
    token = login.data.access_token;
    const me = await api.GET("/api/v1/users/profile");
    assert.equal(me.data?.email, email);
    assert.equal(me.data?.role, "customer");
    // A refusal is typed too: the error body's code.
    const bad = await api.POST("/api/v1/auth/login", { body: { email, password: "wrong password!" } });
    assert.equal(bad.response.status, 401);
    assert.equal(typeof bad.error?.error.code, "string");
  } finally {
    server.kill("SIGTERM");
    await new Promise((ok) => server.once("exit", ok));
    rmSync(dir, { recursive: true, force: true });
  }
});

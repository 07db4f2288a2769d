// The demo in a real browser: `surge demo` on a free loopback port, Debian's
// chromium driven by playwright-core. A customer logs in, buys, pays on the
// sandbox gateway's page and watches the order: the status and timeline must
// change and the shipper's marker must move. A merchant watches a flash
// sale's counter drop live during a small burst. A shopper finds a product
// by a typo without accents, and its page's rating changes live when the
// customer of a delivered order reviews it in another browser context; its
// merchant replies from the console, an admin approves it again after
// three reports sent it back to moderation, and the product heads the shopper's
// recently viewed list. A merchant adds a product image through the page's
// file input and a shopper sees it on the shop's page; writing stock off to
// the product's threshold brings the low-stock alert over the WebSocket. A
// shopper collects vouchers in the cart and uses the best of them. A
// customer returns one unit of a line with a photo, and the merchant
// refunds its share from the order page. An
// admin watches today's flash-sale sign-ups rise live during a burst and
// suspends one of its buyers from the console. The page's client sends a
// request safe to repeat once more after a connection reset, and nothing else.
// Any request that leaves
// 127.0.0.1 fails the test. Screenshots go to web/tests/artifacts/.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { deflateSync } from "node:zlib";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const bin = process.env.SURGE_BIN || join(root, "target", "debug", "surge");
const artifacts = join(here, "artifacts");
mkdirSync(artifacts, { recursive: true });

let server, base, browser, dataDir, demo;
const external = [];

const freePort = () => new Promise((resolve, reject) => {
  const s = createServer();
  s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
  s.on("error", reject);
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, f, ms = 60_000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try { last = await f(); if (last) return last; } catch (e) { last = e; }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

async function api(method, path, token, body) {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const v = await r.json().catch(() => null);
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(v)}`);
  return v;
}

/// A new account (`email`, `token`); a customer gets a Hanoi address.
async function account(email, role, name) {
  await api("POST", "/api/v1/auth/register", null, { email, password: demo.password, name, role });
  const { access_token: token } = await api("POST", "/api/v1/auth/login", null, { email, password: demo.password });
  if (role === "customer") await api("POST", "/api/v1/users/addresses", token, { label: "home", line1: "1 Hang Bai", city: "Hanoi", lat: 21.03, lng: 105.85 });
  return { email, token };
}

/// `n` new customers with an address, who each claim `sale` at once.
async function burst(sale, prefix, n) {
  const buyers = await Promise.all(Array.from({ length: n }, (_, i) => account(`${prefix}-${Date.now()}-${i}@demo.surge`, "customer", `${prefix} ${i}`)));
  const claims = await Promise.all(buyers.map((b) => api("POST", `/api/v1/flash-sales/${sale}/claims`, b.token, { quantity: 1, payment_method: "cod" })));
  assert.equal(claims.filter((c) => c.status === "confirmed").length, n);
}

/// What `page`'s WebSocket hears: the topics it got subscribed to, and
/// each event passed to `onEvent`.
function listen(page, onEvent) {
  const subscribed = new Set();
  page.on("websocket", (ws) => ws.on("framereceived", (f) => {
    const m = JSON.parse(String(f.payload));
    if (m.type === "subscribed") subscribed.add(m.topic);
    if (m.type === "event") onEvent(m);
  }));
  return subscribed;
}

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  // Nothing may leave the machine: record and refuse it.
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.hostname !== "127.0.0.1") { external.push(url.href); return route.abort(); }
    return route.continue();
  });
  page.on("websocket", (ws) => { if (new URL(ws.url()).hostname !== "127.0.0.1") external.push(ws.url()); });
  // An attempt the page's Content-Security-Policy stopped counts too.
  page.on("console", (m) => { if (m.text().includes("Content Security Policy")) external.push(m.text()); });
  page.on("pageerror", (e) => console.error("page error:", e.message));
  return page;
}

async function logIn(page, email) {
  await page.goto(`${base}/`);
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", demo.password);
  await page.click("form#login button");
  await page.waitForSelector("#logout");
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "surge-demo-"));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(bin, ["demo", "--addr", `127.0.0.1:${port}`, "--data-dir", dataDir], {
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, SURGE_LOG: process.env.SURGE_LOG || "warn", SURGE_METRICS_ADDR: "127.0.0.1:0" },
  });
  demo = await until("the demo to be seeded", async () => {
    const r = await fetch(`${base}/demo.json`);
    return r.ok ? r.json() : null;
  }, 120_000);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  await sleep(500);
  rmSync(dataDir, { recursive: true, force: true });
});

test("a request safe to repeat is sent once more after a reset, and a plain POST is not", async () => {
  const page = await newPage();
  await page.goto(`${base}/`);
  // The first GET meets a reset (as on a kept-alive connection the server
  // was closing): the page's client sends it again and gets the answer.
  let gets = 0;
  await page.route("**/api/v1/products?limit=5", (route) => (++gets === 1 ? route.abort("connectionreset") : route.continue()));
  const products = await page.evaluate(() => api("GET", "/api/v1/products?limit=5"));
  assert.equal(gets, 2, "one retry");
  assert.equal(products.items.length, 5, "the retry's answer");
  // A POST without an Idempotency-Key is never sent twice.
  let posts = 0;
  await page.route("**/api/v1/auth/login", (route) => { posts++; return route.abort("connectionreset"); });
  const failed = await page.evaluate(() => api("POST", "/api/v1/auth/login", { email: "nobody@demo.surge", password: "x" }).then(() => "answered", (e) => e.name));
  assert.equal(failed, "TypeError");
  assert.equal(posts, 1, "no retry");
  // With a key it is safe to repeat, and repeated once.
  let keyed = 0;
  await page.route("**/api/v1/orders", (route) => { keyed++; return route.abort("connectionreset"); });
  await page.evaluate(() => api("POST", "/api/v1/orders", {}, false, { "idempotency-key": "k1" }).catch(() => null));
  assert.equal(keyed, 2, "one retry under the same key");
  assert.deepEqual(external, [], "requests left the machine");
});

test("a customer buys, pays on the sandbox page and watches the delivery live", async () => {
  const page = await newPage();
  const sent = [];
  page.on("websocket", (ws) => ws.on("framesent", (f) => sent.push(JSON.parse(String(f.payload)))));
  await logIn(page, "binh@demo.surge");
  await page.waitForSelector("button.add");
  await page.click("button.add");
  await page.waitForSelector("#checkout");
  await page.click("#checkout");
  // The sandbox gateway's hosted page; paying returns to the order's page.
  await page.waitForSelector("button#pay");
  await page.click("button#pay");
  await page.waitForURL(/#\/orders\//);
  await page.waitForSelector("#timeline li");
  const steps = async () => page.locator("#timeline li").count();
  const first = await steps();
  // The simulated merchant confirms; a simulated shipper accepts, picks up
  // and drives: the status and the timeline change live.
  await until("the order to be confirmed", async () => (await page.textContent("#status")).match(/confirmed|ready|picked|delivering/));
  await until("more timeline steps", async () => (await steps()) > first + 1);
  await until("the shipper to be on the way", async () => (await page.textContent("#status")).includes("delivering"), 90_000);
  const marker = page.locator("#shipper-marker");
  const positions = new Set();
  await until("the marker to move three times", async () => {
    const t = await marker.getAttribute("transform");
    if (t) positions.add(t);
    return positions.size >= 3;
  }, 30_000);
  assert.match(await page.textContent("#eta"), /\d+ (s|min)/);
  // The connection drops: the page reconnects and resumes where it was.
  const topic = `order:${page.url().split("/").pop()}`;
  await page.evaluate(() => live.ws.close());
  const resumed = await until("a resubscription with since", async () =>
    sent.find((m) => m.type === "subscribe" && m.topic === topic && Number.isInteger(m.since)));
  assert.ok(resumed.since > 0);
  const before = positions.size;
  await until("the marker to keep moving after the reconnect", async () => {
    const t = await marker.getAttribute("transform");
    if (t) positions.add(t);
    return positions.size >= before + 2;
  }, 30_000);
  await page.screenshot({ path: join(artifacts, "order.png") });
  assert.deepEqual(external, [], "requests left the machine");
});

test("a declined payment is tried again from the order page and then paid", async () => {
  const page = await newPage();
  await logIn(page, "an@demo.surge");
  await page.waitForSelector("button.add");
  await page.click("button.add");
  await page.waitForSelector("#checkout");
  await page.click("#checkout");
  // The gateway declines: back on the order, which waits and says so.
  await page.waitForSelector("button#fail");
  const first = page.url();
  await page.click("button#fail");
  await page.waitForURL(/#\/orders\//);
  await page.waitForSelector("#pay-again");
  assert.match(await page.textContent("#pay"), /declined/);
  assert.match(await page.textContent("#status"), /pending payment/i);
  // A fresh link for the same checkout; paying there pays the order.
  await page.click("#pay-again");
  await page.waitForSelector("button#pay");
  assert.notEqual(page.url(), first, "a new link, the declined one closed");
  await page.click("button#pay");
  await page.waitForURL(/#\/orders\//);
  await until("the order to be paid", async () => !(await page.textContent("#status")).match(/pending/i));
  assert.equal(await page.locator("#pay-again").count(), 0);
  assert.deepEqual(external, [], "requests left the machine");
});

test("a shopper collects the shop's and the platform's vouchers in the cart and uses the best of them", async () => {
  const me = await account(`vouchers-${Date.now()}@demo.surge`, "customer", "Voucher shopper");
  const { items } = await api("GET", "/api/v1/search?q=cork%20yoga%20mat&limit=5");
  const mat = items.find((p) => p.name === "Cork yoga mat");
  assert.ok(mat, "the demo's cork mat");
  await api("POST", "/api/v1/cart/items", me.token, { product_id: mat.id, quantity: 1 });
  const page = await newPage();
  await page.setViewportSize({ width: 390, height: 844 });
  await logIn(page, me.email);
  // The shop's and the platform's vouchers are offered; collected, the
  // best combination is suggested and used at once.
  for (const code of ["MAI20K", "FREESHIP", "SURGE10"]) await page.click(`#vouchers [data-collect="${code}"]`);
  await page.waitForSelector("#best-vouchers");
  await page.click("#best-vouchers");
  await until("both vouchers applied", async () => (await page.locator("#vouchers .vouchers li:has-text('applied')").count()) === 2);
  const cart = await api("GET", "/api/v1/cart", me.token);
  assert.deepEqual(cart.vouchers.map((v) => v.code).sort(), ["FREESHIP", "MAI20K"]);
  assert.equal(cart.totals.discount, 20_000);
  assert.ok(cart.totals.shipping_discount > 0, JSON.stringify(cart.totals));
  // SURGE10 needs 1,000,000: collected, it says why it cannot be used.
  assert.match(await page.textContent("#vouchers"), /SURGE10[\s\S]*minimum spend/);
  assert.match(await page.textContent("#cart"), /free shipping/);
  await page.locator("#cart").screenshot({ path: join(artifacts, "cart-vouchers.png") });
  assert.deepEqual(external, [], "requests left the machine");
});

test("a flash sale's counter drops live during a burst", async () => {
  const page = await newPage();
  const heard = [];
  const subscribed = listen(page, (m) => { if (m.data?.kind === "capacity") heard.push(m.data.remaining); });
  await logIn(page, "mai@demo.surge");
  const sale = demo.flash_sales[0].id;
  const counter = page.locator(`.queue[data-queue="${sale}"] [data-remaining]`);
  const start = Number(await until("the counter", async () => {
    const t = await counter.textContent();
    return /^\d+$/.test(t) ? t : null;
  }));
  assert.ok(start >= 10, `only ${start} left`);
  await until("the page's live subscription", async () => subscribed.has(`queue:${sale}`));
  // Ten new customers claim at once.
  await burst(sale, "burst", 10);
  // No reload: the page hears it over the WebSocket.
  await until("the counter to drop by 10", async () => Number(await counter.textContent()) === start - 10, 15_000);
  // …because the page heard it over its WebSocket, not by reading again.
  assert.ok(heard.includes(start - 10), `capacity frames heard: ${heard}`);
  await page.screenshot({ path: join(artifacts, "flash-sale.png") });
  assert.deepEqual(external, [], "requests left the machine");
});

test("a typo finds a product, its rating changes live when a delivered order is reviewed, the merchant replies, and it is recently viewed", async () => {
  // A shop in Da Nang (no demo shipper within reach: its merchant delivers)
  // and a customer whose order of its mat is delivered.
  const stamp = Date.now();
  const person = (role, i) => account(`review-${stamp}-${role}-${i}@demo.surge`, role, `Review ${role}`);
  const merchant = await person("merchant", 0);
  const shop = await api("POST", "/api/v1/shops", merchant.token, { name: "Da Nang Yoga", location: { lat: 16.06, lng: 108.2 }, address: "3 Le Loi" });
  const name = `Thảm tập Yoga Lụa ${stamp % 1000}`;
  const product = await api("POST", `/api/v1/shops/${shop.id}/products`, merchant.token, { name, category: "yoga", price: 300000, currency: "VND", stock: 10, weight_grams: 900 });
  const buyer = await person("customer", 1);
  const address = await api("POST", "/api/v1/users/addresses", buyer.token, { label: "home", line1: "5 Bach Dang", city: "Da Nang", lat: 16.07, lng: 108.22 });
  await api("POST", "/api/v1/cart/items", buyer.token, { product_id: product.id, quantity: 1 });
  const placed = await api("POST", "/api/v1/orders", buyer.token, { address_id: address.id, payment_method: "cod" });
  const order = placed.orders[0].id;
  await api("PUT", `/api/v1/orders/${order}/confirm`, merchant.token, {});
  for (const status of ["ready_for_pickup", "picked_up", "delivering", "delivered"]) {
    await api("PUT", `/api/v1/shipping/${order}/status`, merchant.token, { status });
  }

  // A shopper types it with a typo and no accents, and opens its page.
  const shopper = await newPage();
  const ratings = [];
  const subscribed = listen(shopper, (m) => { if (m.data?.kind === "rating") ratings.push(m.data.summary); });
  await logIn(shopper, "binh@demo.surge");
  await shopper.waitForSelector("#q");
  const card = shopper.locator(`.hit[data-id="${product.id}"]`);
  await until("the product to be found by 'tham tap yoag'", async () => {
    await shopper.fill("#q", "tham tap yoag");
    await shopper.click("#search button");
    await sleep(300);
    return (await card.count()) > 0;
  }, 30_000);
  await card.locator("a").click();
  await shopper.waitForSelector("#rating");
  assert.match(await shopper.textContent("#rating"), /no reviews yet/);
  await until("the product page's live subscription", async () => subscribed.has(`product:${product.id}`));

  // The customer reviews it from the order's page.
  const customer = await newPage();
  await logIn(customer, buyer.email);
  await customer.goto(`${base}/#/orders/${order}`);
  const form = customer.locator(`form.review-form[data-product="${product.id}"]`);
  await form.waitFor();
  await form.locator("select").selectOption("4");
  await form.locator("textarea").fill("Grippy and thick.");
  await form.locator("button").click();
  await customer.waitForSelector("text=reviewed, thank you");

  // The shopper's page shows it without a reload, heard over its socket.
  await until("the rating on the product page", async () => (await shopper.textContent("#rating")).includes("★ 4.0"), 15_000)
    .catch(async (e) => {
      console.error("rating shown:", await shopper.textContent("#rating"), "frames:", JSON.stringify(ratings), "url:", shopper.url());
      await shopper.screenshot({ path: join(artifacts, "product-failed.png") });
      throw e;
    });
  assert.ok(ratings.some((s) => s.count === 1 && s.average === 4), `rating frames: ${JSON.stringify(ratings)}`);
  await shopper.screenshot({ path: join(artifacts, "product.png") });

  // The merchant answers it from their console; the shopper sees the reply.
  const console_ = await newPage();
  await logIn(console_, merchant.email);
  await console_.goto(`${base}/#/merchant`);
  const reply = console_.locator("form.reply-form").first();
  await reply.waitFor();
  await reply.locator("input").fill("Thank you, enjoy your practice!");
  await reply.locator("button").click();
  await console_.waitForSelector("#merchant-reviews .reply");
  await shopper.reload();
  await shopper.waitForSelector("#reviews .reply");
  assert.match(await shopper.textContent("#reviews"), /enjoy your practice/);

  // Three people report it, which sends it back to moderation; the admin
  // approves it from the moderation view.
  const written = (await api("GET", `/api/v1/products/${product.id}/reviews`)).items[0];
  for (let i = 0; i < 3; i++) {
    const reporter = await person("customer", 10 + i);
    await api("POST", `/api/v1/reviews/${written.id}/report`, reporter.token, { reason: "Looks like an advert" });
  }
  const admin = await newPage();
  await logIn(admin, "admin@demo.surge");
  const pending = admin.locator(`#pending [data-review="${written.id}"]`);
  await pending.waitFor();
  await pending.locator('[data-act="approve"]').click();
  await until("the review to leave the moderation queue", async () => (await pending.count()) === 0, 15_000);

  // Back on the shop's front page, the product heads the shopper's
  // recently viewed list.
  await shopper.goto(`${base}/#/shop`);
  await until("the product among the recently viewed", async () => {
    await shopper.reload();
    await shopper.waitForSelector("#recent", { timeout: 5_000 });
    return (await shopper.textContent("#recent")).includes(name);
  }, 20_000);
  await shopper.screenshot({ path: join(artifacts, "shop-front.png") });
  assert.deepEqual(external, [], "requests left the machine");
});

/// A `w` × `h` RGB PNG with a gradient (made here: the test needs a real
/// image file, and the page sends it as a browser would).
function png(w, h) {
  const table = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = table[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc(body), body.length + 4);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) raw.set([(x * 255) / w, (y * 255) / h, 140], y * (w * 3 + 1) + 1 + x * 3);
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

test("a merchant adds a product image and sees it in the shop, and is alerted live when stock falls to its threshold", async () => {
  const stamp = Date.now();
  const { email, token } = await account(`stock-${stamp}@demo.surge`, "merchant", "Stock keeper");
  const shop = await api("POST", "/api/v1/shops", token, { name: "Hue Pilates Supply", location: { lat: 16.46, lng: 107.59 }, address: "9 Le Loi" });
  const product = await api("POST", `/api/v1/shops/${shop.id}/products`, token, { name: "Pilates ring", category: "pilates", price: 250000, currency: "VND", stock: 10, weight_grams: 400, low_stock_threshold: 3 });

  const page = await newPage();
  const alerts = [];
  const subscribed = listen(page, (m) => { if (m.data?.notification?.kind === "low_stock") alerts.push(m.data.notification); });
  await logIn(page, email);
  const row = page.locator(`#stock tr[data-product="${product.id}"]`);
  await row.waitFor();

  // The image goes up through the page's file input, as a merchant's would.
  await row.locator("[data-upload]").setInputFiles({ name: "ring.png", mimeType: "image/png", buffer: png(480, 320) });
  await row.locator("img.thumb").waitFor();
  const stored = await api("GET", `/api/v1/products/${product.id}`);
  assert.equal(stored.media.length, 1);
  assert.equal(stored.media[0].width, 480);

  // The shop's page shows it, loaded from /media.
  const shopper = await newPage();
  await logIn(shopper, demo.logins.find((l) => l.role === "customer" && !l.simulated).email);
  await shopper.goto(`${base}/#/shops/${shop.id}`);
  const img = shopper.locator(`.hit[data-id="${product.id}"] img.thumb`);
  await img.waitFor();
  await until("the image to load", async () => (await img.evaluate((i) => i.complete && i.naturalWidth)) > 0, 15_000);
  assert.equal(await img.getAttribute("data-media"), stored.media[0].id);
  await shopper.screenshot({ path: join(artifacts, "product-image.png") });

  // Seven units written off: available 3 reaches the threshold; the alert
  // comes over the WebSocket, without a reload.
  await until("the page's live subscription", async () => [...subscribed].some((t) => t.startsWith("user:")));
  await row.locator("form.adjust input[name=quantity]").fill("-7");
  await row.locator("form.adjust input[name=reason]").fill("damaged in transit");
  await row.locator("form.adjust button").click();
  await until("the low-stock alert", async () => alerts.length === 1, 15_000);
  assert.match(alerts[0].body, /Pilates ring/);
  await page.locator(".toast", { hasText: alerts[0].title }).waitFor();
  await page.locator(`#stock tr.low[data-product="${product.id}"]`).waitFor();
  assert.equal(await page.locator(`#stock tr[data-product="${product.id}"] [data-available]`).textContent(), "3");
  await sleep(1_000);
  assert.equal(alerts.length, 1, "one alert per crossing");
  await page.screenshot({ path: join(artifacts, "merchant-stock.png") });
  assert.deepEqual(external, [], "requests left the machine");
});

test("a customer returns one unit of a line with a photo and the merchant refunds its share", async () => {
  // A shop in Da Nang (no demo shipper within reach: its merchant delivers)
  // and an online-paid order of two of its mats, delivered.
  const stamp = Date.now();
  const merchant = await account(`return-${stamp}-m@demo.surge`, "merchant", "Return merchant");
  const shop = await api("POST", "/api/v1/shops", merchant.token, { name: "Da Nang Mats", location: { lat: 16.06, lng: 108.2 }, address: "3 Le Loi" });
  const product = await api("POST", `/api/v1/shops/${shop.id}/products`, merchant.token, { name: "Travel mat", category: "yoga", price: 200000, currency: "VND", stock: 10, weight_grams: 900 });
  const buyer = await account(`return-${stamp}-c@demo.surge`, "customer", "Return buyer");
  const address = await api("POST", "/api/v1/users/addresses", buyer.token, { label: "home", line1: "5 Bach Dang", city: "Da Nang", lat: 16.07, lng: 108.22 });
  await api("POST", "/api/v1/cart/items", buyer.token, { product_id: product.id, quantity: 2 });
  const placed = await api("POST", "/api/v1/orders", buyer.token, { address_id: address.id, payment_method: "sandbox" });
  const order = placed.orders[0];
  await fetch(`${order.payment.checkout_url}/pay`, { method: "POST" });
  await until("the payment", async () => (await api("GET", `/api/v1/orders/${order.id}`, buyer.token)).status === "paid");
  await api("PUT", `/api/v1/orders/${order.id}/confirm`, merchant.token, {});
  for (const status of ["ready_for_pickup", "picked_up", "delivering", "delivered"]) {
    await api("PUT", `/api/v1/shipping/${order.id}/status`, merchant.token, { status });
  }
  // On a phone: one of the two, why, a photo; the request says what it refunds.
  const page = await newPage();
  await page.setViewportSize({ width: 390, height: 844 });
  await logIn(page, buyer.email);
  await page.goto(`${base}/#/orders/${order.id}`);
  await page.click("#returns summary");
  await page.locator("#return-photo").setInputFiles({ name: "tear.png", mimeType: "image/png", buffer: png(320, 240) });
  await until("the photo added", async () => (await page.textContent("#returns")).includes("1 added"));
  await page.click("#returns summary").catch(() => {});
  await page.fill("#returns [data-line='0']", "1");
  await page.fill("#return-why", "one has a tear");
  await page.click("#ask-return");
  await until("the return shown", async () => (await page.textContent("#returns")).includes("one has a tear"));
  const asked = await api("GET", `/api/v1/orders/${order.id}`, buyer.token);
  assert.equal(asked.status, "return_requested");
  assert.deepEqual(asked.return_request.lines, [{ product_id: product.id, quantity: 1 }]);
  assert.equal(asked.return_request.amount, Math.floor(asked.line_prices[0].total / 2));
  assert.equal(asked.return_request.photos.length, 1);
  // The photo is shown to the order's parties, fetched with their session.
  await until("the photo shown", async () => page.locator("#returns img[src^='blob:']").count());
  await page.screenshot({ path: join(artifacts, "return-asked.png"), fullPage: true });
  // The merchant accepts from the same page; the share is refunded. Their
  // console is slow to load and still loading when they open the order: the
  // order page must win (a view finishing late used to draw over it).
  const shopPage = await newPage();
  let answered;
  const late = new Promise((resolve) => { answered = resolve; });
  await shopPage.route("**/api/v1/users/me/flash-sales*", async (route) => {
    await sleep(1500);
    await route.continue();
    answered();
  });
  await logIn(shopPage, merchant.email);
  await shopPage.goto(`${base}/#/orders/${order.id}`);
  await late;
  await sleep(500);
  await shopPage.click("#accept-return");
  await until("the refund", async () => (await api("GET", `/api/v1/orders/${order.id}`, buyer.token)).status === "refunded");
  const done = await api("GET", `/api/v1/orders/${order.id}`, buyer.token);
  assert.equal(done.refunded, asked.return_request.amount);
  await until("the refund shown", async () => (await shopPage.textContent("#returns")).includes("Refunded"));
  assert.deepEqual(external, [], "requests left the machine");
});

test("an admin sees today's statistics move live during a burst", async () => {
  const page = await newPage();
  const heard = [];
  const subscribed = listen(page, (m) => { if (m.topic === "admin:stats") heard.push(m.data.flash_sale_signups); });
  await logIn(page, demo.logins.find((l) => l.role === "admin").email);
  const figure = page.locator('[data-stat="flash_sale_signups"]');
  const start = Number(await until("today's figures", async () => {
    const t = (await figure.textContent().catch(() => "")).trim();
    return /^\d+$/.test(t) ? t : null;
  }));
  await until("the page's live subscription", async () => subscribed.has("admin:stats"));
  // A merchant opens a sale; ten new customers claim it at once.
  const { token: st } = await account(`seller-${Date.now()}@demo.surge`, "merchant", "Seller");
  const shop = await api("POST", "/api/v1/shops", st, { name: "Hanoi Yoga Outlet", location: { lat: 21.03, lng: 105.85 }, address: "2 Hang Bai" });
  const product = await api("POST", `/api/v1/shops/${shop.id}/products`, st, { name: "Yoga block", category: "yoga", price: 90000, currency: "VND", stock: 100, weight_grams: 300 });
  const sale = (await api("POST", "/api/v1/flash-sales", st, { product_id: product.id, stock: 20, per_user_limit: 1, price: 45000 })).id;
  await burst(sale, "stats", 10);
  await until("the figure to rise by 10", async () => Number(await figure.textContent()) >= start + 10, 20_000);
  assert.ok(heard.some((n) => n >= start + 10), `admin:stats frames heard: ${heard}`);
  await page.screenshot({ path: join(artifacts, "admin-stats.png") });

  // One of the buyers is found by email and suspended from the console:
  // they can no longer log in (403 `account_suspended`).
  await page.fill("#user-search input[name=email]", "stats-");
  await page.click("#user-search button");
  const first = page.locator("#users tr[data-user]").first();
  const email = await until("the search's accounts", async () => {
    const t = (await first.locator("td").first().textContent()).trim();
    return t.startsWith("stats-") ? t : null;
  }, 10_000);
  assert.equal(await page.locator("#users tr[data-user]").count(), 10, "only the ten buyers match");
  await first.locator('[data-act="suspend"]').click();
  await page.locator("#users tr[data-user] .badge", { hasText: "suspended" }).first().waitFor();
  const r = await fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password: demo.password }) });
  assert.equal(r.status, 403, "a suspended account cannot log in");
  assert.deepEqual(external, [], "requests left the machine");
});

// Surge's demo front end: plain JavaScript, no build step, no external
// requests. Talks to the same origin's HTTP API and one WebSocket session.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const view = () => $("#view");
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const money = (n, cur) => `${Number(n || 0).toLocaleString("en")} ${esc(cur || "")}`;
// A product's price now: its sale price while the sale runs (half-open
// window, as the server charges it), with the list price struck through.
const priceTag = (p) => {
  const now = Date.now();
  const s = p.sale;
  const runs = s && (!s.starts_at || Date.parse(s.starts_at) <= now) && (!s.ends_at || now < Date.parse(s.ends_at));
  return runs
    ? `<span class="price">${money(s.price, p.currency)}</span> <del aria-label="was">${money(p.price, p.currency)}</del>`
    : `<span class="price">${money(p.price, p.currency)}</span>`;
};
const when = (t) => (t ? new Date(t).toLocaleTimeString() : "");

// ---- session -----------------------------------------------------------------

const auth = {
  get token() { return sessionStorage.getItem("surge.access"); },
  get refresh() { return sessionStorage.getItem("surge.refresh"); },
  get me() { return JSON.parse(sessionStorage.getItem("surge.me") || "null"); },
  save(pair, me) {
    sessionStorage.setItem("surge.access", pair.access_token);
    sessionStorage.setItem("surge.refresh", pair.refresh_token);
    if (me) sessionStorage.setItem("surge.me", JSON.stringify(me));
  },
  clear() { sessionStorage.clear(); },
};

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/// `fetch`, sent once more when it failed before any answer (a reset of a
/// kept-alive connection the server or a proxy was closing) and the request
/// is safe to repeat: GET, PUT, DELETE, or one with an Idempotency-Key
/// (README, API: the client rule). Anything else fails as it came.
async function send(path, init) {
  try {
    return await fetch(path, init);
  } catch (e) {
    const repeatable = ["GET", "PUT", "DELETE"].includes(init.method) || "idempotency-key" in init.headers;
    if (!repeatable) throw e;
    return fetch(path, init);
  }
}

async function api(method, path, body, retried, extra) {
  const headers = { accept: "application/json", ...extra };
  if (auth.token) headers.authorization = `Bearer ${auth.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await send(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  if (r.status === 401 && auth.refresh && !retried) {
    const ok = await fetch("/api/v1/auth/refresh", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: auth.refresh }),
    });
    if (ok.ok) { auth.save(await ok.json()); return api(method, path, body, true, extra); }
    auth.clear(); location.hash = "#/login";
  }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

/// Sends `file` as the `file` part of a multipart form (image uploads).
async function upload(path, file) {
  const form = new FormData();
  form.append("file", file);
  const r = await fetch(path, { method: "POST", headers: { authorization: `Bearer ${auth.token}` }, body: form });
  const data = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

function toast(title, body) {
  const t = document.createElement("div");
  t.className = "toast";
  t.innerHTML = `<b>${esc(title)}</b>${esc(body || "")}`;
  $("#toasts").append(t);
  setTimeout(() => t.remove(), 6000);
}

// ---- live: one WebSocket, resubscribed with `since` after a reconnect --------

const live = {
  ws: null,
  topics: new Map(), // topic -> { since, handler }
  backoff: 500,
  timer: null,
  open() {
    if (!auth.token || this.ws) return;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/ws`;
    const ws = new WebSocket(url, ["surge.json", `bearer.${auth.token}`]);
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 500;
      setLive(true);
      for (const [topic, t] of this.topics) this.send(subscribeMsg(topic, t.since));
    };
    ws.onmessage = (e) => this.receive(JSON.parse(e.data));
    ws.onclose = () => {
      this.ws = null;
      setLive(false);
      if (!auth.token) return;
      clearTimeout(this.timer);
      // A request first: it renews an expired access token (the upgrade
      // would be refused with 401 over and over otherwise).
      this.timer = setTimeout(() => api("GET", "/api/v1/users/profile").catch(() => {}).finally(() => this.open()), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 8000);
    };
  },
  close() {
    clearTimeout(this.timer);
    this.topics.clear();
    if (this.ws) { const ws = this.ws; this.ws = null; ws.onclose = null; ws.close(); }
    setLive(false);
  },
  send(msg) { if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg)); },
  /// `handler` gets the topic's events and positions; `onSubscribed`, if
  /// given, runs each time the subscription is (re)established — the moment
  /// to read the current state, since nothing after it will be missed.
  subscribe(topic, handler, onSubscribed) {
    const known = this.topics.get(topic);
    this.topics.set(topic, { since: known?.since ?? null, handler, onSubscribed });
    this.open();
    this.send(subscribeMsg(topic, known?.since ?? null));
  },
  unsubscribe(topic) {
    if (this.topics.delete(topic)) this.send({ type: "unsubscribe", topic });
  },
  receive(msg) {
    const t = msg.topic && this.topics.get(msg.topic);
    if (msg.type === "event" && t) {
      t.since = Math.max(t.since ?? 0, msg.seq);
      t.handler(msg);
    } else if (msg.type === "subscribed" && t) {
      if (t.since == null || msg.seq > t.since) t.since = msg.seq;
      t.onSubscribed?.();
    } else if (msg.type === "location" && t) {
      t.handler(msg);
    } else if (msg.type === "error") {
      console.warn("live:", msg.code, msg.message);
    }
  },
};

function subscribeMsg(topic, since) {
  return since == null ? { type: "subscribe", topic } : { type: "subscribe", topic, since };
}

function setLive(on) {
  const el = $("#live");
  el.className = `live ${on ? "on" : "off"}`;
  el.textContent = on ? "live" : "reconnecting";
}

/// Views that react to the user's notifications (besides the toast).
const notificationHooks = new Set();

function watchNotifications() {
  const me = auth.me;
  if (!me) return;
  live.subscribe(`user:${me.id}`, (msg) => {
    const d = msg.data || {};
    if (d.kind === "notification" && d.notification) {
      toast(d.notification.title, d.notification.body);
      for (const hook of notificationHooks) hook(d.notification);
    }
  });
}

// ---- the map: SVG drawn from coordinates, no tiles -----------------------------

class MiniMap {
  constructor(el, points) {
    this.el = el;
    const lats = points.map((p) => p.lat), lngs = points.map((p) => p.lng);
    const pad = 0.004;
    this.box = {
      minLat: Math.min(...lats) - pad, maxLat: Math.max(...lats) + pad,
      minLng: Math.min(...lngs) - pad, maxLng: Math.max(...lngs) + pad,
    };
    this.w = 640;
    const kx = Math.cos((((this.box.minLat + this.box.maxLat) / 2) * Math.PI) / 180);
    this.h = Math.round((this.w * (this.box.maxLat - this.box.minLat)) / ((this.box.maxLng - this.box.minLng) * kx));
    this.h = Math.max(240, Math.min(520, this.h));
    this.trail = [];
    let streets = "";
    for (let i = 1; i < 12; i++) {
      streets += `<line x1="${(i * this.w) / 12}" y1="0" x2="${(i * this.w) / 12}" y2="${this.h}" stroke="#fff" stroke-width="${i % 4 ? 3 : 7}"/>`;
      streets += `<line x1="0" y1="${(i * this.h) / 12}" x2="${this.w}" y2="${(i * this.h) / 12}" stroke="#fff" stroke-width="${i % 4 ? 3 : 7}"/>`;
    }
    el.innerHTML = `<svg class="map" viewBox="0 0 ${this.w} ${this.h}" role="img" aria-label="delivery map">
      ${streets}
      <polyline id="trail" fill="none" stroke="#d9480f" stroke-width="3" stroke-dasharray="6 4" points=""/>
      <g id="marks"></g>
      <g id="shipper-marker" style="display:none"><circle r="11" fill="#d9480f" stroke="#fff" stroke-width="3"/><circle r="4" fill="#fff"/></g>
    </svg>`;
  }
  xy(p) {
    const x = ((p.lng - this.box.minLng) / (this.box.maxLng - this.box.minLng)) * this.w;
    const y = ((this.box.maxLat - p.lat) / (this.box.maxLat - this.box.minLat)) * this.h;
    return [Math.round(x * 10) / 10, Math.round(y * 10) / 10];
  }
  mark(p, label, color) {
    const [x, y] = this.xy(p);
    $("#marks", this.el).insertAdjacentHTML("beforeend",
      `<g transform="translate(${x},${y})"><rect x="-8" y="-8" width="16" height="16" rx="3" fill="${color}"/><text x="12" y="5" font-size="13" fill="#1f2328">${esc(label)}</text></g>`);
  }
  shipper(p) {
    const [x, y] = this.xy(p);
    const m = $("#shipper-marker", this.el);
    m.style.display = "";
    m.setAttribute("transform", `translate(${x},${y})`);
    m.dataset.lat = p.lat;
    m.dataset.lng = p.lng;
    this.trail.push(`${x},${y}`);
    if (this.trail.length > 300) this.trail.shift();
    $("#trail", this.el).setAttribute("points", this.trail.join(" "));
  }
}

// ---- views ---------------------------------------------------------------------

const routes = [
  [/^#\/login$/, loginView],
  [/^#\/shop$/, shopView],
  [/^#\/orders$/, ordersView],
  [/^#\/orders\/([\w-]+)$/, orderView],
  [/^#\/checkouts\/([\w-]+)$/, checkoutView],
  [/^#\/products\/([\w-]+)$/, productView],
  [/^#\/shops\/([\w-]+)$/, shopPage],
  [/^#\/admin$/, adminView],
  [/^#\/shipper$/, shipperView],
  [/^#\/merchant$/, merchantView],
];

/// What `surge demo` seeded (logins, flash sales, courses); null on a
/// server that is not a demo. Read once it is there.
let demoCache = null;
async function demoInfo() {
  demoCache ??= await fetch("/demo.json").then((r) => (r.ok ? r.json() : null)).catch(() => null);
  return demoCache;
}

let leaving = [];
function onLeave(f) { leaving.push(f); }

async function render() {
  for (const f of leaving) f();
  leaving = [];
  const me = auth.me;
  const hash = location.hash || "#/";
  if (!me && hash !== "#/login") { location.hash = "#/login"; return; }
  if (hash === "#/" || hash === "") { location.hash = home(me); return; }
  drawNav(me, hash);
  for (const [re, f] of routes) {
    const m = hash.match(re);
    if (m) {
      try { await f(...m.slice(1)); } catch (e) { view().innerHTML = `<p class="error">${esc(e.message)}</p>`; }
      // A view still loading when the route changed wrote over the newer
      // one: draw the current route again.
      if ((location.hash || "#/") !== hash) render();
      return;
    }
  }
  view().innerHTML = `<p>Nothing here. <a href="#/">Home</a></p>`;
}

function home(me) {
  return { customer: "#/shop", shipper: "#/shipper", merchant: "#/merchant", admin: "#/admin" }[me?.role] || "#/login";
}

function drawNav(me, hash) {
  const links = !me ? [] : me.role === "customer" ? [["#/shop", "Shop"], ["#/orders", "My orders"]]
    : me.role === "shipper" ? [["#/shipper", "Deliveries"]]
    : me.role === "admin" ? [["#/admin", "Console"], ["#/merchant", "Shop and courses"]] : [["#/merchant", "Shop and courses"]];
  $("#nav").innerHTML = links.map(([h, t]) => `<a href="${h}" class="${hash.startsWith(h) ? "active" : ""}">${t}</a>`).join("");
  $("#who").innerHTML = me ? `${esc(me.name)} (${esc(me.role)}) <button id="logout">Log out</button>` : "";
  if (me) $("#logout").onclick = async () => {
    try { await api("POST", "/api/v1/auth/logout", { refresh_token: auth.refresh }); } catch (_) { /* already gone */ }
    live.close(); auth.clear(); location.hash = "#/login";
  };
}

async function loginView() {
  const demo = await demoInfo();
  const logins = demo?.logins || [];
  view().innerHTML = `<div class="card"><h1>Log in</h1>
    <form class="stack" id="login">
      <input name="email" type="email" placeholder="email" required autocomplete="username">
      <input name="password" type="password" placeholder="password" required autocomplete="current-password">
      <button class="primary">Log in</button><p class="error" id="err"></p>
    </form>
    ${logins.length ? `<h2>Demo accounts</h2><div class="logins">${logins.map((l, i) => `<button data-i="${i}">${esc(l.role)}: ${esc(l.email)}</button>`).join("")}</div>
    <p class="muted">Password for every demo account: <code>${esc(demo.password)}</code></p>` : ""}</div>`;
  const form = $("#login");
  form.onsubmit = async (e) => {
    e.preventDefault();
    try {
      const pair = await api("POST", "/api/v1/auth/login", { email: form.email.value, password: form.password.value });
      auth.save(pair);
      const me = await api("GET", "/api/v1/users/profile");
      auth.save(pair, me);
      watchNotifications();
      location.hash = home(me);
    } catch (err) { $("#err").textContent = err.message; }
  };
  view().querySelectorAll(".logins button").forEach((b) => (b.onclick = () => {
    const l = logins[b.dataset.i];
    form.email.value = l.email;
    form.password.value = demo.password;
    form.requestSubmit();
  }));
}

// customer --------------------------------------------------------------------

const stars = (avg, count) => (count ? `★ ${Number(avg).toFixed(1)} <span class="muted">(${count})</span>` : `<span class="muted">no reviews yet</span>`);

/// Adds `p` to the cart from any "Add to cart" button.
async function addToCart(id) {
  try { const cart = await api("POST", "/api/v1/cart/items", { product_id: id, quantity: 1 }); if ($("#cart")) drawCart(cart); toast("Added to cart"); } catch (e) { toast("Not added", e.message); }
}

/// A record's primary image as a thumbnail (nothing without one).
const thumb = (p) => (p.media?.length ? `<img class="thumb" src="${esc(p.media[0].thumbnail_url)}" alt="" data-media="${esc(p.media[0].id)}">` : "");

const productCard = (h) => `<div class="card hit" data-id="${h.id}">
  ${thumb(h)}<a href="#/products/${h.id}"><b>${esc(h.name)}</b></a><div class="muted">${esc(h.category)}</div>
  <div class="rating">${stars(h.rating, h.rating_count)}</div>
  <div class="row"><span class="price">${money(h.price, h.currency)}</span>
  <button class="add" data-id="${h.id}">Add to cart</button></div></div>`;

/// The search box: suggestions while typing, results with facets and sort.
function searchBox(el) {
  el.innerHTML = `<form id="search" class="row" autocomplete="off">
      <input id="q" name="q" type="search" placeholder="Search products (typos and missing accents are fine)">
      <select id="sort"><option value="relevance">Best match</option><option value="price">Cheapest</option><option value="rating">Best rated</option><option value="newest">Newest</option></select>
      <button class="primary">Search</button></form>
    <ul id="suggest" class="suggest"></ul><div id="facets" class="facets"></div><div class="grid" id="results"></div>`;
  const q = $("#q", el);
  let category = "";
  let typing = 0;
  let waits = 0;
  const run = async () => {
    const params = new URLSearchParams({ type: "product", limit: "30", sort: $("#sort", el).value });
    if (q.value.trim()) params.set("q", q.value.trim());
    if (category) params.set("category", category);
    const r = await api("GET", `/api/v1/search?${params}`);
    $("#suggest", el).innerHTML = "";
    $("#results", el).innerHTML = r.items.length ? r.items.map(productCard).join("") : `<p class="muted">Nothing found.</p>`;
    $("#facets", el).innerHTML = `<span class="muted">${r.total} found</span> ` + r.facets.categories
      .map((b) => `<button class="facet ${b.value === category ? "on" : ""}" data-c="${esc(b.value)}">${esc(b.value || "other")} (${b.count})</button>`).join("");
    el.querySelectorAll("button.facet").forEach((b) => (b.onclick = () => { category = category === b.dataset.c ? "" : b.dataset.c; run(); }));
    el.querySelectorAll("#results button.add").forEach((b) => (b.onclick = () => addToCart(b.dataset.id)));
    // A catalog just seeded may not be searchable yet (the index follows
    // within a second): look again a few times.
    if (!r.total && !q.value.trim() && !category && waits++ < 10) setTimeout(() => el.isConnected && run(), 1000);
  };
  q.oninput = () => {
    clearTimeout(typing);
    typing = setTimeout(async () => {
      const text = q.value.trim();
      if (!text) { $("#suggest", el).innerHTML = ""; return; }
      const s = await api("GET", `/api/v1/search/suggest?type=product&q=${encodeURIComponent(text)}`).catch(() => ({ suggestions: [] }));
      $("#suggest", el).innerHTML = s.suggestions.map((h) => `<li><a href="#/products/${h.id}">${esc(h.name)}</a></li>`).join("");
    }, 120);
  };
  $("#sort", el).onchange = run;
  $("#search", el).onsubmit = (e) => { e.preventDefault(); run(); };
  return run();
}

async function shopView() {
  const [cart, demo] = await Promise.all([api("GET", "/api/v1/cart"), demoInfo()]);
  const sales = demo?.flash_sales || [];
  const courses = demo?.courses || [];
  view().innerHTML = `<div class="cols"><section>
      <h1>Products</h1><div id="strips"></div><div id="finder"></div>
      ${sales.length || courses.length ? `<h2>Flash sales and free courses</h2><div class="grid">
        ${sales.map((s) => `<div class="card queue" data-queue="${s.id}" data-kind="sale"><b>${esc(s.title)}</b>
          <div><span class="counter" data-remaining>…</span> <span class="muted">left</span> · <span data-state aria-live="polite"></span></div>
          <div class="bar"><div data-fill style="width:0"></div></div>
          <button class="claim" data-id="${s.id}">Grab one</button></div>`).join("")}
        ${courses.map((c) => `<div class="card queue" data-queue="${c.id}" data-kind="course"><b>${esc(c.title)}</b>
          <div><span class="counter" data-remaining>…</span> <span class="muted">seats left</span></div>
          <div class="bar"><div data-fill style="width:0"></div></div>
          <button class="enroll" data-id="${c.id}">Enroll free</button>
          <details class="about" data-course="${c.id}" hidden><summary>About this course</summary></details></div>`).join("")}</div>` : ""}
    </section><aside><div class="card" id="cart"></div></aside></div>`;
  drawCart(cart);
  // A course's description (rendered and sanitized by the server) and syllabus.
  view().querySelectorAll("details.about").forEach(async (d) => {
    const c = await api("GET", `/api/v1/courses/${d.dataset.course}`).catch(() => null);
    if (!c || (!c.description && !c.syllabus?.length)) return;
    d.insertAdjacentHTML("beforeend", `${c.description ? `<div class="description">${c.description.html}</div>` : ""}
      ${c.syllabus?.length ? `<ol class="syllabus">${c.syllabus.map((p) => `<li>${esc(p.title)}${p.minutes ? ` <span class="muted">${p.minutes} min</span>` : ""}</li>`).join("")}</ol>` : ""}`);
    d.hidden = false;
  });
  await Promise.all([strips($("#strips")), searchBox($("#finder"))]);
  view().querySelectorAll("button.claim").forEach((b) => (b.onclick = async () => {
    try {
      const c = await api("POST", `/api/v1/flash-sales/${b.dataset.id}/claims`, { quantity: 1, payment_method: "cod" });
      toast(c.status === "confirmed" ? "You got one" : `Claim ${c.status}`, c.order_id ? "Your order is placed." : "");
    } catch (e) { toast("Not claimed", e.message); }
  }));
  view().querySelectorAll("button.enroll").forEach((b) => (b.onclick = async () => {
    try { const c = await api("POST", `/api/v1/courses/${b.dataset.id}/enrollments`, {}); toast(`Enrollment ${c.status}`); } catch (e) { toast("Not enrolled", e.message); }
  }));
  watchQueues();
}

/// Live counters of every `.queue` card on the page.
function watchQueues() {
  view().querySelectorAll(".queue").forEach(async (card) => {
    const id = card.dataset.queue;
    const show = (s) => {
      const cap = s.capacity ?? s.config?.capacity ?? 0;
      $("[data-remaining]", card).textContent = s.remaining;
      $("[data-fill]", card).style.width = `${cap ? (100 * (cap - s.remaining)) / cap : 0}%`;
      // A sale's window: the card flips when the server announces the opening.
      const state = $("[data-state]", card);
      if (state && s.state) {
        state.textContent = { scheduled: "opens soon", open: "open now", sold_out: "sold out", closed: "ended" }[s.state] || s.state;
        const claim = $("button.claim", card);
        if (claim) claim.disabled = s.state === "scheduled" || s.state === "closed";
      }
    };
    const path = card.dataset.kind === "sale" ? `/api/v1/flash-sales/${id}` : `/api/v1/courses/${id}/seats`;
    const current = () => api("GET", path).then((s) => { if (s.remaining !== undefined) show(s); }, () => {});
    await current();
    // Read again once subscribed: a change between the read and the
    // subscription would otherwise be missed.
    live.subscribe(`queue:${id}`, (msg) => { if (msg.data?.kind === "capacity") show(msg.data); }, current);
    onLeave(() => live.unsubscribe(`queue:${id}`));
  });
}

function drawCart(cart) {
  const el = $("#cart");
  const items = cart.items || [];
  // Each line's part of the discount, as the one pricing function shared it.
  const priced = new Map((cart.shops || []).flatMap((q) => q.lines || []).map((p) => [p.product_id, p]));
  const off = (l) => { const p = priced.get(l.product_id); return p?.discount ? `<div class="muted">discount −${money(p.discount, l.currency)}</div>` : ""; };
  el.innerHTML = `<h2>Cart</h2>${items.length ? `<table>${items.map((l) => `<tr><td>${esc(l.name || l.product_id)}</td><td>× ${l.quantity}</td><td>${money(l.unit_price, l.currency)}${l.list_price ? ` <del aria-label="was">${money(l.list_price, l.currency)}</del>` : ""}${off(l)}</td></tr>`).join("")}</table>
    ${cart.coupon_problem ? `<p class="error">Coupon ${esc(cart.coupon)}: ${esc(cart.coupon_problem.message)}</p>` : ""}
    ${(cart.shops || []).filter((q) => q.shipping_problem).map((q) => `<p class="error">${esc(q.shipping_problem.message)}</p>`).join("")}
    ${(cart.voucher_problems || []).map((v) => `<p class="error">Voucher ${esc(v.code)}: ${esc(v.problem.message)}</p>`).join("")}
    ${cart.address_id ? `<p class="muted">Shipping ${money(cart.totals?.shipping_fee, cart.currency)}${cart.totals?.shipping_discount ? ` (−${money(cart.totals.shipping_discount, cart.currency)} free shipping)` : ""} · tax ${money(cart.totals?.tax, cart.currency)}${cart.totals?.discount ? ` · shop discount −${money(cart.totals.discount, cart.currency)}` : ""}${cart.totals?.platform_discount ? ` · voucher −${money(cart.totals.platform_discount, cart.currency)}` : ""}</p>` : ""}
    <div id="vouchers" aria-live="polite"></div>
    <p>Total <span class="price">${money(cart.totals?.total, cart.currency)}</span></p>
    <fieldset><legend>Payment</legend>
      <label><input type="radio" name="pay" value="sandbox" checked> Pay online</label>
      <label><input type="radio" name="pay" value="cod"> Cash on delivery</label></fieldset>
    <p><label>Deliver to <select id="addr"><option value="">a new home address</option></select></label></p>
    <button class="primary" id="checkout">Check out</button><p class="error" id="cerr"></p>` : `<p class="muted">Empty.</p>`}`;
  const btn = $("#checkout", el);
  if (items.length) drawVouchers(cart);
  // One key per checkout of this cart (per address and payment chosen),
  // kept across retries: a checkout answered 503 is resumed, not placed
  // again; choosing otherwise is another checkout.
  const keys = new Map();
  const keyFor = (body) => {
    const k = JSON.stringify(body);
    if (!keys.has(k)) keys.set(k, Date.now().toString(36) + Math.random().toString(36).slice(2));
    return keys.get(k);
  };
  // The addresses to choose from, the default first.
  if (btn) api("GET", "/api/v1/users/addresses").then((list) => {
    const sel = $("#addr", el);
    if (!sel || !list.length) return;
    const sorted = [...list].sort((a, b) => Number(!!b.is_default) - Number(!!a.is_default));
    sel.innerHTML = sorted.map((a) => `<option value="${esc(a.id)}">${esc(a.label)} — ${esc(a.line1)}, ${esc(a.city)}</option>`).join("");
  }, () => {});
  if (btn) btn.onclick = async () => {
    btn.disabled = true;
    try {
      let address = $("#addr", el).value;
      if (!address) {
        address = (await api("POST", "/api/v1/users/addresses", { label: "home", line1: "5 Hang Gai", city: "Hanoi", lat: 21.0335, lng: 105.8502 })).id;
      }
      const method = $("input[name=pay]:checked", el).value;
      const body = { address_id: address, payment_method: method };
      const placed = await api("POST", "/api/v1/orders", body, false, { "idempotency-key": keyFor(body) });
      const order = placed.orders[0];
      // One payment for every shop's order: the gateway's hosted page,
      // which returns to the order once paid.
      location.href = placed.payment?.checkout_url || `#/orders/${order.id}`;
    } catch (e) { $("#cerr").textContent = e.message; btn.disabled = false; }
  };
}

// The cart's vouchers: the wallet against the cart (apply one, or the
// best combination the server suggests), and the vouchers of the cart's
// shops and of the platform still to collect.
async function drawVouchers(cart) {
  const box = $("#vouchers");
  if (!box) return;
  const shops = [...new Set((cart.shops || []).map((q) => q.shop_id))];
  let choice, open;
  try {
    [choice, ...open] = await Promise.all([api("GET", "/api/v1/cart/vouchers"), api("GET", "/api/v1/vouchers"),
      ...shops.map((id) => api("GET", `/api/v1/vouchers?shop_id=${encodeURIComponent(id)}`))]);
  } catch { return; }
  const held = new Set(choice.wallet.map((v) => v.code));
  const applied = new Set([...(cart.vouchers || []).map((v) => v.code), cart.coupon].filter(Boolean));
  const toCollect = open.flatMap((p) => p.items).filter((v) => !held.has(v.code));
  const what = (v) => v.kind === "percentage" ? `${v.value}% off` : v.kind === "free_shipping" ? `free shipping up to ${money(v.value, cart.currency)}` : `${money(v.value, cart.currency)} off`;
  const whose = (v) => v.scope === "platform" ? "Surge" : "shop";
  const best = choice.best.filter((c) => !applied.has(c));
  box.innerHTML = `<h3>Vouchers</h3>
    ${best.length && choice.best_saving ? `<p><button id="best-vouchers">Use the best vouchers (save ${money(choice.best_saving, cart.currency)})</button></p>` : ""}
    <ul class="vouchers">${choice.wallet.map((v) => `<li><b>${esc(v.code)}</b> · ${whose(v)} · ${what(v)}${v.min_spend ? `, min. ${money(v.min_spend, cart.currency)}` : ""}
      ${applied.has(v.code) ? `<span class="muted">applied</span> <button data-remove="${esc(v.code)}">Remove</button>` : v.problem ? `<span class="muted">${esc(v.problem.message)}</span>` : `<button data-apply="${esc(v.code)}">Apply (−${money(v.saving, cart.currency)})</button>`}</li>`).join("")}
    ${toCollect.map((v) => `<li><b>${esc(v.code)}</b> · ${whose(v)} · ${what(v)} <button data-collect="${esc(v.code)}">Collect</button></li>`).join("")}</ul>
    ${choice.wallet.length || toCollect.length ? "" : `<p class="muted">No vouchers for this cart.</p>`}<p class="error" id="verr"></p>`;
  const act = (fn) => async (ev) => {
    ev.target.disabled = true;
    try { await fn(ev.target.dataset); } catch (e) { $("#verr").textContent = e.message; ev.target.disabled = false; }
  };
  const apply = (code) => api("POST", "/api/v1/cart/vouchers", { code });
  box.querySelectorAll("[data-apply]").forEach((b) => b.onclick = act(async (d) => drawCart(await apply(d.apply))));
  box.querySelectorAll("[data-remove]").forEach((b) => b.onclick = act(async (d) =>
    drawCart(await (d.remove === cart.coupon ? api("DELETE", "/api/v1/cart/remove-coupon") : api("DELETE", `/api/v1/cart/vouchers/${encodeURIComponent(d.remove)}`)))));
  box.querySelectorAll("[data-collect]").forEach((b) => b.onclick = act(async (d) => {
    await api("POST", `/api/v1/vouchers/${encodeURIComponent(d.collect)}/collect`);
    drawCart(await api("GET", "/api/v1/cart"));
  }));
  const all = $("#best-vouchers", box);
  if (all) all.onclick = act(async () => { let c = cart; for (const code of best) c = await apply(code); drawCart(c); });
}

async function ordersView() {
  const page = await api("GET", "/api/v1/orders?limit=50");
  view().innerHTML = `<h1>My orders</h1><div class="card"><table><tr><th>Order</th><th>Placed</th><th>Status</th><th>Total</th></tr>
    ${page.items.map((o) => `<tr><td><a href="#/orders/${o.id}">${o.id.slice(0, 8)}…</a></td><td>${when(o.created_at)}</td>
    <td class="status">${esc(o.status.replaceAll("_", " "))}</td><td>${money(o.totals?.total, o.currency)}</td></tr>`).join("")}</table></div>`;
}

// A delivered order's return: its customer picks lines and how many of
// each, says why and adds photos; its merchant accepts (the amount shown
// is refunded) or refuses saying why.
function returnBox(o, redraw) {
  const box = $("#returns");
  if (!box) return;
  const r = o.return_request;
  const mine = o.customer_id === auth.me?.id;
  const open = o.status === "delivered" && !r && o.return_deadline && new Date(o.return_deadline) > new Date();
  const act = async (ev, f) => {
    ev.target.disabled = true;
    try { redraw(await f()); } catch (e) { $("#rerr", box).textContent = e.message; ev.target.disabled = false; }
  };
  if (r) {
    const names = new Map(o.lines.map((l) => [l.product_id, l.name]));
    const decided = r.refused ? `<p class="error">Refused: ${esc(r.refused)}</p>` : o.status === "refunded" ? `<p>Refunded ${money(o.refunded, o.currency)}</p>` : "";
    box.innerHTML = `<h2>Return</h2><ul>${r.lines.map((l) => `<li>${esc(names.get(l.product_id) || l.product_id)} × ${l.quantity}</li>`).join("")}</ul>
      <p class="muted">${r.reason ? esc(r.reason) + " · " : ""}refund ${money(r.amount, o.currency)}${r.photos.length ? ` · ${r.photos.length} photo(s)` : ""}</p>
      <p>${r.photos.map((p) => `<img class="thumb" data-private="${esc(p)}?size=thumbnail" alt="return photo">`).join("")}</p>${decided}
      ${o.status === "return_requested" && !mine ? `<p><button id="accept-return">Accept and refund ${money(r.amount, o.currency)}</button></p>
        <p><label>Reason to refuse <input id="refuse-why" maxlength="500"></label> <button id="refuse-return">Refuse</button></p>` : ""}<p class="error" id="rerr"></p>`;
    // The order's parties only: fetched with the session, shown from memory.
    box.querySelectorAll("img[data-private]").forEach(async (img) => {
      const r = await send(img.dataset.private, { headers: { authorization: `Bearer ${auth.token}` } }).catch(() => null);
      if (r?.ok) img.src = URL.createObjectURL(await r.blob());
    });
    $("#accept-return", box)?.addEventListener("click", (ev) => act(ev, () => api("PUT", `/api/v1/orders/${o.id}/return/receive`)));
    $("#refuse-return", box)?.addEventListener("click", (ev) => act(ev, () => api("PUT", `/api/v1/orders/${o.id}/return/refuse`, { reason: $("#refuse-why", box).value })));
    return;
  }
  if (!mine || !open) { box.innerHTML = ""; return; }
  box.innerHTML = `<details><summary>Return items</summary>
    ${o.lines.map((l, i) => `<p><label>${esc(l.name)} <input type="number" min="0" max="${l.quantity}" value="0" data-line="${i}" aria-label="how many ${esc(l.name)} to return"></label> of ${l.quantity}</p>`).join("")}
    <p><label>Why <input id="return-why" maxlength="500"></label></p>
    <p><label>Photos <input type="file" id="return-photo" accept="image/*"></label> <span class="muted">${o.return_photos.length} added</span></p>
    <p><button id="ask-return">Ask for a return</button></p><p class="error" id="rerr"></p></details>`;
  $("#return-photo", box).addEventListener("change", async (ev) => {
    const f = ev.target.files[0];
    if (!f) return;
    try { redraw(await upload(`/api/v1/orders/${o.id}/return/photos`, f)); } catch (e) { $("#rerr", box).textContent = e.message; }
  });
  $("#ask-return", box).addEventListener("click", (ev) => act(ev, () => {
    const lines = [...box.querySelectorAll("[data-line]")].map((el) => ({ product_id: o.lines[el.dataset.line].product_id, quantity: Number(el.value) })).filter((l) => l.quantity > 0);
    const reason = $("#return-why", box).value.trim();
    return api("POST", `/api/v1/orders/${o.id}/return`, { lines, ...(reason ? { reason } : {}) });
  }));
}

// An unpaid online order: its checkout's payment (every shop's order of
// that checkout) can be paid again until the deadline.
function payAgain(o) {
  const box = $("#pay");
  const s = o.payment?.session;
  if (!box || !s || o.status !== "pending_payment" || o.customer_id !== auth.me?.id) { if (box) box.innerHTML = ""; return; }
  const declined = o.payment.status === "declined";
  const shops = s.orders.length > 1 ? ` for ${s.orders.length} shops' orders` : "";
  box.innerHTML = `<p class="${declined ? "error" : "muted"}">${declined ? "Your payment was declined." : "Waiting for your payment."}
    Pay ${money(s.total, o.payment.currency)}${shops} by ${when(o.payment_deadline)}.</p>
    <p><button id="pay-again">${declined ? "Try again" : "Pay now"}</button></p>`;
  $("#pay-again").onclick = async (ev) => {
    ev.target.disabled = true;
    try {
      const p = await api("POST", `/api/v1/checkouts/${encodeURIComponent(s.id)}/pay`);
      location.href = p.checkout_url;
    } catch (e) { box.insertAdjacentHTML("beforeend", `<p class="error">${esc(e.message)}</p>`); ev.target.disabled = false; }
  };
}

// Back from the payment page: one shop's order opens at once; a checkout
// over several shops lists its orders, paid once.
async function checkoutView(id) {
  const p = await api("GET", `/api/v1/checkouts/${encodeURIComponent(id)}`);
  if (p.orders.length === 1) { location.replace(`#/orders/${p.orders[0]}`); return; }
  view().innerHTML = `<h1>Your checkout</h1><div class="card">
    <p>Payment: <span class="status">${esc(p.status.replaceAll("_", " "))}</span> · ${money(p.amount, p.currency)} for ${p.orders.length} shops</p>
    <ul>${p.orders.map((o) => `<li><a href="#/orders/${esc(o)}">Order ${esc(o.slice(0, 8))}…</a></li>`).join("")}</ul></div>`;
}

async function orderView(id) {
  const o = await api("GET", `/api/v1/orders/${id}`);
  const shop = await api("GET", `/api/v1/shops/${o.shop_id}`);
  view().innerHTML = `<h1>Order ${esc(id.slice(0, 8))}…</h1><div class="cols">
    <section><div id="map"></div></section>
    <aside class="card">
      <div>Status: <span class="status" id="status">${esc(o.status.replaceAll("_", " "))}</span></div>
      <div class="muted">Arriving in</div><div class="eta" id="eta">—</div>
      <div class="muted" id="distance"></div>
      <h2>Timeline</h2><ul class="timeline" id="timeline"></ul>
      <div id="pay" aria-live="polite"></div>
      <div id="returns" aria-live="polite"></div>
      <div id="review"></div>
      ${o.customer_id === auth.me?.id ? `<p><button id="again">Buy again</button></p><p class="muted" id="again-note" aria-live="polite"></p>` : ""}
    </aside></div>`;
  $("#again")?.addEventListener("click", async () => {
    const r = await api("POST", `/api/v1/orders/${id}/buy-again`);
    $("#again-note").textContent = r.skipped.length
      ? `In your cart. Left out: ${r.skipped.map((x) => `${x.name} (${x.message})`).join("; ")}`
      : "In your cart.";
  });
  const map = new MiniMap($("#map"), [shop.location, o.address]);
  map.mark(shop.location, shop.name, "#1f6feb");
  map.mark(o.address, "You", "#1a7f37");
  const tl = $("#timeline");
  const addStep = (status, at, by) => tl.insertAdjacentHTML("beforeend",
    `<li><span class="status">${esc(String(status).replaceAll("_", " "))}</span> <span class="muted">${when(at)}${by ? ` · ${esc(by)}` : ""}</span></li>`);
  const draw = (o) => {
    $("#status").textContent = o.status.replaceAll("_", " ");
    tl.innerHTML = "";
    for (const t of o.timeline || []) addStep(t.event || t.status, t.at, t.by);
    reviewForms(o);
    payAgain(o);
    returnBox(o, draw);
  };
  draw(o);
  const topic = `order:${id}`;
  live.subscribe(topic, (msg) => {
    if (msg.type === "location") {
      const p = msg.data;
      map.shipper(p);
      $("#eta").textContent = p.eta_s == null ? "—" : p.eta_s < 60 ? `${p.eta_s} s` : `${Math.round(p.eta_s / 60)} min`;
      $("#distance").textContent = p.distance_m == null ? "" : `${Math.round(p.distance_m)} m away${p.arriving ? " · arriving" : ""}`;
      return;
    }
    const d = msg.data || {};
    if (d.kind === "status") {
      $("#status").textContent = d.status.replaceAll("_", " ");
      addStep(d.status, d.at, d.by);
      if (["delivered", "return_requested", "returned", "refunded"].includes(d.status)) api("GET", `/api/v1/orders/${id}`).then(draw, () => {});
      if (d.status !== "pending_payment") $("#pay").innerHTML = "";
    } else if (d.kind === "payment_declined" || d.kind === "payment_reopened") {
      api("GET", `/api/v1/orders/${id}`).then(payAgain, () => {});
    } else if (d.kind === "shipper_assigned") {
      addStep("shipper assigned", d.at);
    } else if (d.kind === "arriving") {
      addStep("arriving", d.at);
      toast("Your shipper is arriving");
    }
  }, () => api("GET", `/api/v1/orders/${id}`).then(draw, () => {}));
  onLeave(() => live.unsubscribe(topic));
}

/// Small lists of products (trending, recently viewed, …).
const mini = (items, what = (h) => stars(h.rating, h.rating_count), href = (h) => `#/products/${h.id}`) => items.length
  ? items.map((h) => `<div><a href="${href(h)}">${esc(h.name)}</a> ${what(h)}</div>`).join("")
  : `<p class="muted">—</p>`;

/// Under the search: trending now, your recently viewed, shops near you.
async function strips(el) {
  const [trending, recent, nearby] = await Promise.all([
    api("GET", "/api/v1/trending?limit=6").catch(() => ({ items: [] })),
    api("GET", "/api/v1/users/me/recently-viewed?limit=6").catch(() => ({ items: [] })),
    api("GET", `/api/v1/shops/nearby?lat=${HANOI.lat}&lng=${HANOI.lng}&radius_km=20&limit=6`).catch(() => ({ items: [] })),
  ]);
  el.innerHTML = `<div class="grid strips">
    <div class="card" id="trending"><h2>Trending now</h2>${mini(trending.items)}</div>
    <div class="card" id="recent"><h2>Recently viewed</h2>${mini(recent.items)}</div>
    <div class="card" id="nearby"><h2>Shops near you</h2>${mini(nearby.items,
      (s) => `<span class="muted">${s.distance_km} km</span> ${stars(s.rating, s.rating_count)}`, (s) => `#/shops/${s.id}`)}</div></div>`;
}

const photos = (r) => (r.images?.length ? `<div class="row">${r.images.filter((i) => i.startsWith("/api/v1/media/")).map((i) => `<img class="thumb" src="${esc(i)}?size=thumbnail" alt="">`).join("")}</div>` : "");
const reviewCard = (r, extra = "") => `<div class="card review" data-review="${r.id}">
  <div>${"★".repeat(r.stars)}${"☆".repeat(5 - r.stars)} <span class="muted">verified purchase · ${when(r.created_at)}</span></div>
  <p>${esc(r.text)}</p>${photos(r)}${r.reply ? `<p class="muted reply">Shop: ${esc(r.reply.text)}</p>` : ""}${extra}</div>`;

/// A product: details, its rating (live on `product:{id}`), its reviews,
/// what was bought with it and similar products. Opening it records a view.
async function productView(id) {
  const [p, summary, reviews, together, similar] = await Promise.all([
    api("GET", `/api/v1/products/${id}`), api("GET", `/api/v1/products/${id}/rating-summary`),
    api("GET", `/api/v1/products/${id}/reviews?limit=20`),
    api("GET", `/api/v1/products/${id}/also-bought?limit=4`), api("GET", `/api/v1/products/${id}/similar?limit=4`),
  ]);
  api("POST", "/api/v1/behavior/view", { product_id: id }).catch(() => {});
  view().innerHTML = `<div class="cols"><section>
      <h1>${esc(p.name)}</h1><div class="muted">${esc(p.category)} · ${p.stock} in stock · <a href="#/shops/${p.shop_id}">the shop</a></div>
      ${p.media?.length ? `<div class="gallery">${p.media.map((m) => `<img src="${esc(m.url)}" width="${m.width}" height="${m.height}" alt="">`).join("")}</div>` : ""}
      <p>${priceTag(p)} <button class="add primary" data-id="${p.id}">Add to cart</button></p>
      ${p.brand ? `<p class="muted">Brand: ${esc(p.brand)}</p>` : ""}
      ${/* The server renders the description and sanitizes it (ammonia). */ ""}
      ${p.description ? `<div class="description">${p.description.html}</div>` : ""}
      ${Object.keys(p.attributes || {}).length ? `<dl class="attributes">${Object.entries(p.attributes)
        .map(([k, vs]) => `<dt>${esc(k)}</dt><dd>${vs.map(esc).join(", ")}</dd>`).join("")}</dl>` : ""}
      <h2>Reviews</h2><div id="reviews"></div></section>
    <aside class="card"><h2>Rating</h2><div id="rating"></div><h2>Bought together</h2><div id="together"></div>
      <h2>Similar</h2><div id="related"></div></aside></div>`;
  const drawSummary = (s) => {
    $("#rating").innerHTML = `<div class="big">${stars(s.average, s.count)}</div>` +
      [5, 4, 3, 2, 1].map((n) => `<div class="muted">${n} ★ ${s.distribution[n - 1]}</div>`).join("");
  };
  drawSummary(summary);
  $("#reviews").innerHTML = reviews.items.length ? reviews.items.map((r) => reviewCard(r)).join("") : `<p class="muted">No reviews yet.</p>`;
  $("#together").innerHTML = mini(together.items);
  $("#related").innerHTML = mini(similar.items);
  view().querySelectorAll("button.add").forEach((b) => (b.onclick = () => addToCart(b.dataset.id)));
  const topic = `product:${id}`;
  live.subscribe(topic, (msg) => { if (msg.data?.kind === "rating") drawSummary(msg.data.summary); },
    () => api("GET", `/api/v1/products/${id}/rating-summary`).then(drawSummary, () => {}));
  onLeave(() => live.unsubscribe(topic));
}

/// A shop: where it is, its rating and reviews, its products.
async function shopPage(id) {
  const [shop, summary, reviews, products] = await Promise.all([
    api("GET", `/api/v1/shops/${id}`), api("GET", `/api/v1/shops/${id}/rating-summary`),
    api("GET", `/api/v1/shops/${id}/reviews?limit=20`), api("GET", `/api/v1/products?shop_id=${id}&limit=60`),
  ]);
  view().innerHTML = `<div class="cols"><section>
      <h1>${esc(shop.name)}</h1><div class="muted">${esc(shop.address)}</div>
      <div class="grid" id="shop-products">${products.items.filter((p) => p.active).map((p) => productCard({ ...p, rating: 0, rating_count: 0 })).join("")}</div>
      <h2>Reviews of the shop</h2><div id="shop-reviews">${reviews.items.map((r) => reviewCard(r)).join("") || `<p class="muted">No reviews yet.</p>`}</div></section>
    <aside class="card"><h2>Rating</h2><div class="big" id="shop-rating">${stars(summary.average, summary.count)}</div>
      ${[5, 4, 3, 2, 1].map((n) => `<div class="muted">${n} ★ ${summary.distribution[n - 1]}</div>`).join("")}</aside></div>`;
  view().querySelectorAll(".rating").forEach((r) => r.remove());
  view().querySelectorAll("button.add").forEach((b) => (b.onclick = () => addToCart(b.dataset.id)));
}

/// On a received order: a review form per product not yet reviewed.
async function reviewForms(o) {
  const el = $("#review");
  if (!el || !["delivered", "return_requested", "returned", "refunded"].includes(o.status)) return;
  const written = await api("GET", `/api/v1/orders/${o.id}/reviews`).catch(() => []);
  const done = new Set(written.filter((r) => r.kind === "product").map((r) => r.subject_id));
  // The order's page redraws on each of its live events: forms being
  // filled in are kept unless what was reviewed changed.
  const sig = `${o.id}:${[...done].sort().join(",")}`;
  if (el.dataset.sig === sig) return;
  el.dataset.sig = sig;
  const lines = [...new Map(o.lines.map((l) => [l.product_id, l])).values()];
  el.innerHTML = `<h2>Your reviews</h2>` + lines.map((l) => done.has(l.product_id)
    ? `<p>${esc(l.name)}: reviewed, thank you.</p>`
    : `<form class="stack review-form" data-product="${l.product_id}"><b>${esc(l.name)}</b>
        <select name="stars">${[5, 4, 3, 2, 1].map((n) => `<option value="${n}">${n} ★</option>`).join("")}</select>
        <textarea name="text" maxlength="2000" placeholder="What did you think?"></textarea>
        <button class="primary">Post review</button></form>`).join("");
  el.querySelectorAll("form.review-form").forEach((f) => (f.onsubmit = async (e) => {
    e.preventDefault();
    try {
      await api("POST", `/api/v1/products/${f.dataset.product}/reviews`, { order_id: o.id, stars: Number(f.stars.value), text: f.text.value });
      toast("Review posted");
      reviewForms(o);
    } catch (err) { toast("Not posted", err.message); }
  }));
}

// shipper ---------------------------------------------------------------------

// Where a shipper starts: at the demo shop's door (Hoan Kiem, Hanoi), so a
// person playing the shipper is the nearest one and gets the next offer.
const HANOI = { lat: 21.0285, lng: 105.8542 };

async function shipperView() {
  view().innerHTML = `<h1>Deliveries</h1><div class="cols"><section class="card" id="job"></section>
    <aside class="card"><div class="row"><button id="online" class="primary">Go online</button><button id="offline">Go offline</button></div>
    <p class="muted" id="me"></p></aside></div>`;
  let pos = { ...HANOI };
  let driving = null;
  const fix = () => ({ lat: pos.lat, lng: pos.lng, ts: Date.now() });
  $("#online").onclick = () => api("PUT", "/api/v1/shipping/shippers/me/status", { status: "online", location: fix() }).then(refresh, (e) => toast("Not online", e.message));
  $("#offline").onclick = () => api("PUT", "/api/v1/shipping/shippers/me/status", { status: "offline" }).then(refresh, (e) => toast("Still online", e.message));
  async function refresh() {
    const me = await api("GET", "/api/v1/shipping/shippers/me");
    $("#me").textContent = `${me.online ? "Online" : "Offline"} · ${me.deliveries} deliveries`;
    const job = $("#job");
    if (me.offer && !me.active_order) {
      job.innerHTML = `<h2>New offer</h2><p>Order ${esc(me.offer.order_id.slice(0, 8))}…, expires ${when(me.offer.expires_at)}</p>
        <button class="primary" id="accept">Accept</button> <button id="decline">Decline</button>`;
      $("#accept").onclick = () => api("POST", `/api/v1/shipping/${me.offer.order_id}/accept`, {}).then(refresh, (e) => toast("Not accepted", e.message));
      $("#decline").onclick = () => api("POST", `/api/v1/shipping/${me.offer.order_id}/decline`, {}).then(refresh);
    } else if (me.active_order) {
      const o = await api("GET", `/api/v1/orders/${me.active_order}`);
      job.innerHTML = `<h2>Delivering ${esc(o.id.slice(0, 8))}…</h2><p>Status: <span class="status">${esc(o.status.replaceAll("_", " "))}</span></p>
        <div class="row">${["picked_up", "delivering", "delivered"].map((s) => `<button data-s="${s}">${s.replace("_", " ")}</button>`).join("")}
        <button id="drive" class="primary">${driving ? "Stop driving" : "Drive to the customer"}</button></div>`;
      job.querySelectorAll("[data-s]").forEach((b) => (b.onclick = () => api("PUT", `/api/v1/shipping/${o.id}/status`, { status: b.dataset.s }).then(refresh, (e) => toast("Not changed", e.message))));
      $("#drive").onclick = () => {
        if (driving) { clearInterval(driving); driving = null; refresh(); return; }
        driving = setInterval(() => {
          // One street at a time: latitude first, then longitude, ~8 m/s.
          const step = 8 / 111195;
          if (Math.abs(o.address.lat - pos.lat) > step) pos.lat += Math.sign(o.address.lat - pos.lat) * step;
          else if (Math.abs(o.address.lng - pos.lng) > step) pos.lng += Math.sign(o.address.lng - pos.lng) * step;
          live.send({ type: "location", ...fix(), speed: 8 });
        }, 1000);
        refresh();
      };
    } else {
      job.innerHTML = `<p class="muted">${me.online ? "Waiting for an offer…" : "Go online to receive offers."}</p>`;
    }
  }
  live.open();
  await refresh();
  const poll = setInterval(() => refresh().catch(() => {}), 2000);
  onLeave(() => { clearInterval(poll); if (driving) clearInterval(driving); });
}

// merchant / trainer ----------------------------------------------------------

async function merchantView() {
  const shops = (await api("GET", "/api/v1/users/me/shops?limit=100")).items.map((s) => s.id);
  const products = (await Promise.all(shops.map((s) => api("GET", `/api/v1/products?shop_id=${s}&limit=100`)))).flatMap((p) => p.items);
  const courses = (await api("GET", "/api/v1/users/me/courses?limit=100")).items;
  const sales = (await api("GET", "/api/v1/users/me/flash-sales?limit=100")).items;
  view().innerHTML = `<h1>${shops.length ? "Shop orders" : "Courses"}</h1>
    ${shops.length ? `<div class="row"><button id="confirm-all" class="primary">Confirm every waiting order</button></div>
      <div class="card"><table id="orders"></table></div>
      <h2>Top products</h2><div class="card"><table id="top-products"></table></div>
      <h2>Products and stock</h2><div class="card"><table id="stock"></table></div>` : ""}
    <h2>Flash sales and courses, live</h2><div class="grid" id="queues">
      ${sales.map((s) => queueCard(s.id, s.title, "sale")).join("")}
      ${courses.map((c) => queueCard(c.id, c.title, "course")).join("")}</div>
    ${products.length ? `<h2>Open a flash sale</h2><form class="row card" id="sale">
      <select name="product">${products.map((p) => `<option value="${p.id}">${esc(p.name)}</option>`).join("")}</select>
      <input name="stock" type="number" min="1" value="20" style="width:90px"> units at
      <input name="price" type="number" min="0" value="10000" style="width:110px">
      <button class="primary">Open</button></form>` : ""}
    ${`<h2>Open a free course</h2><form class="row card" id="course">
      <input name="title" value="Morning Yoga" required><input name="capacity" type="number" min="1" value="30" style="width:90px"> seats
      <button class="primary">Open</button></form>`}`;
  watchQueues();
  if (products.length) {
    view().insertAdjacentHTML("beforeend", `<h2>Reviews</h2><div id="merchant-reviews"></div>`);
    await merchantReviews($("#merchant-reviews"), products.slice(0, 20));
  }
  const saleForm = $("#sale");
  if (saleForm) saleForm.onsubmit = async (e) => {
    e.preventDefault();
    try {
      const s = await api("POST", "/api/v1/flash-sales", { product_id: saleForm.product.value, stock: +saleForm.stock.value, per_user_limit: 1, price: +saleForm.price.value });
      $("#queues").insertAdjacentHTML("beforeend", queueCard(s.id, s.title || "Flash sale", "sale"));
      watchQueues();
    } catch (err) { toast("Not opened", err.message); }
  };
  const courseForm = $("#course");
  if (courseForm) courseForm.onsubmit = async (e) => {
    e.preventDefault();
    try {
      const c = await api("POST", "/api/v1/courses", { title: courseForm.title.value, kind: "yoga", capacity: +courseForm.capacity.value, price: 0, currency: "VND", sessions: [] });
      $("#queues").insertAdjacentHTML("beforeend", queueCard(c.id, c.title, "course"));
      watchQueues();
    } catch (err) { toast("Not opened", err.message); }
  };
  async function drawOrders() {
    const rows = [];
    for (const shop of shops) rows.push(...(await api("GET", `/api/v1/shops/${shop}/orders?limit=30`)).items);
    const table = $("#orders");
    if (!table) return;
    table.innerHTML = `<tr><th>Order</th><th>Placed</th><th>Status</th><th></th></tr>${rows.map((o) => `<tr><td>${o.id.slice(0, 8)}…</td><td>${when(o.created_at)}</td>
      <td class="status">${esc(o.status.replaceAll("_", " "))}</td><td>${o.status === "paid" || (o.status === "pending_payment" && o.payment?.provider === "cod") ? `<button data-confirm="${o.id}">Confirm</button>` : ""}
      ${o.status === "confirmed" && o.delivery?.shipper_id ? `<button data-ready="${o.id}">Ready for pickup</button>` : ""}</td></tr>`).join("")}`;
    table.querySelectorAll("[data-confirm]").forEach((b) => (b.onclick = () => api("PUT", `/api/v1/orders/${b.dataset.confirm}/confirm`, {}).then(drawOrders, (e) => toast("Not confirmed", e.message))));
    table.querySelectorAll("[data-ready]").forEach((b) => (b.onclick = () => api("PUT", `/api/v1/shipping/${b.dataset.ready}/status`, { status: "ready_for_pickup" }).then(drawOrders, (e) => toast("Not changed", e.message))));
  }
  /// Top products of every shop, by revenue of paid orders.
  async function drawTop() {
    const rows = (await Promise.all(shops.map((s) => api("GET", `/api/v1/shops/${s}/analytics/products?limit=5`)))).flat();
    const table = $("#top-products");
    if (!table) return;
    table.innerHTML = rows.length ? `<tr><th>Product</th><th>Orders</th><th>Units</th><th>Revenue</th></tr>${rows.map((p) => `<tr><td>${esc(p.name)}</td>
      <td>${p.orders}</td><td>${p.units}</td><td>${money(p.revenue, products.find((x) => x.id === p.product_id)?.currency || "VND")}</td></tr>`).join("")}`
      : `<tr><td class="muted">No sales yet.</td></tr>`;
  }
  /// Every product's levels, threshold and images; record a movement, set
  /// the threshold, add an image. A low-stock alert redraws it live.
  async function drawStock() {
    const table = $("#stock");
    if (!table) return;
    const items = (await Promise.all(shops.map((s) => api("GET", `/api/v1/shops/${s}/inventory?limit=100`)))).flatMap((p) => p.items);
    const records = Object.fromEntries(products.map((p) => [p.id, p]));
    table.innerHTML = `<tr><th></th><th>Product</th><th>On hand</th><th>Reserved</th><th>Available</th><th>Low at</th><th></th></tr>${items.map((i) => `<tr data-product="${i.product_id}" class="${i.low ? "low" : ""}">
      <td>${thumb(records[i.product_id] || {})}</td><td>${esc(i.name)} ${i.low ? `<span class="badge">low stock</span>` : ""}</td>
      <td>${i.on_hand}</td><td>${i.reserved}</td><td data-available>${i.available}</td>
      <td><form class="row threshold"><input name="at" type="number" min="0" value="${i.low_stock_threshold ?? ""}" style="width:70px"><button>Set</button></form></td>
      <td><form class="row adjust"><input name="quantity" type="number" required placeholder="±" style="width:70px"><input name="reason" placeholder="reason" required maxlength="200" style="width:110px"><button>Record</button></form>
        <label class="file">Add image<input type="file" accept="image/jpeg,image/png,image/webp" data-upload="${i.product_id}" hidden></label></td></tr>`).join("")}`;
    table.querySelectorAll("tr[data-product]").forEach((row) => {
      const id = row.dataset.product;
      row.querySelector("form.adjust").onsubmit = async (e) => {
        e.preventDefault();
        const f = e.target;
        try { await api("POST", `/api/v1/products/${id}/inventory/adjustments`, { quantity: +f.quantity.value, reason: f.reason.value }); await drawStock(); } catch (err) { toast("Not recorded", err.message); }
      };
      row.querySelector("form.threshold").onsubmit = async (e) => {
        e.preventDefault();
        const v = e.target.at.value;
        try { await api("PUT", `/api/v1/products/${id}`, { low_stock_threshold: v === "" ? null : +v }); await drawStock(); } catch (err) { toast("Not set", err.message); }
      };
      row.querySelector("[data-upload]").onchange = async (e) => {
        const file = e.target.files[0];
        if (!file) return;
        try {
          const m = await upload(`/api/v1/products/${id}/media`, file);
          const p = records[id];
          if (p) p.media = [...(p.media || []), m];
          toast("Image added");
          await drawStock();
        } catch (err) { toast("Image refused", err.message); }
      };
    });
  }
  const onAlert = (n) => { if (n.kind === "low_stock") drawStock().catch(() => {}); };
  notificationHooks.add(onAlert);
  onLeave(() => notificationHooks.delete(onAlert));

  const confirmAll = $("#confirm-all");
  if (confirmAll) confirmAll.onclick = async () => {
    // The queue: paid orders, and cash orders waiting (confirmed before payment).
    let done = 0;
    for (const shop of shops) {
      const waiting = [
        ...(await api("GET", `/api/v1/shops/${shop}/orders?status=paid&limit=100`)).items,
        ...(await api("GET", `/api/v1/shops/${shop}/orders?status=pending_payment&limit=100`)).items.filter((o) => o.payment?.provider === "cod"),
      ];
      if (!waiting.length) continue;
      const out = await api("POST", `/api/v1/shops/${shop}/orders/confirm`, { order_ids: waiting.map((o) => o.id) });
      done += out.results.filter((r) => r.status === 200).length;
    }
    toast(done ? `${done} order(s) confirmed` : "Nothing waits for confirmation");
    drawOrders();
  };
  if (shops.length) {
    await drawOrders();
    await drawTop();
    await drawStock();
    const poll = setInterval(() => { drawOrders().catch(() => {}); drawTop().catch(() => {}); }, 3000);
    onLeave(() => clearInterval(poll));
  }
}

/// The newest reviews of the merchant's products, each with a reply form
/// until replied (a merchant replies once).
async function merchantReviews(el, products) {
  const pages = await Promise.all(products.map((p) => api("GET", `/api/v1/products/${p.id}/reviews?limit=5`).catch(() => ({ items: [] }))));
  const all = pages.flatMap((p) => p.items).sort((a, b) => b.created_at.localeCompare(a.created_at));
  const name = Object.fromEntries(products.map((p) => [p.id, p.name]));
  el.innerHTML = all.length ? all.map((r) => reviewCard(r, `<div class="muted">on ${esc(name[r.subject_id])}</div>` + (r.reply ? "" : `<form class="row reply-form" data-id="${r.id}">
      <input name="text" maxlength="1000" required placeholder="Reply to this review"><button class="primary">Reply</button></form>`))).join("")
    : `<p class="muted">No reviews yet.</p>`;
  el.querySelectorAll("form.reply-form").forEach((f) => (f.onsubmit = async (e) => {
    e.preventDefault();
    try { await api("POST", `/api/v1/reviews/${f.dataset.id}/reply`, { text: f.text.value }); toast("Reply posted"); merchantReviews(el, products); } catch (err) { toast("Not posted", err.message); }
  }));
}

// admin -------------------------------------------------------------------------

/// The admin's console: today's platform figures (live on `admin:stats`),
/// accounts (search, suspend, reactivate), and reviews waiting for
/// moderation.
async function adminView() {
  view().innerHTML = `<h1>Today on the platform <span class="muted" id="stats-day"></span></h1>
    <div class="grid stats" id="stats"></div>
    <h2>Accounts</h2><form class="row" id="user-search"><input name="email" placeholder="email starts with"><select name="role">
      <option value="">any role</option>${["customer", "merchant", "shipper", "admin"].map((r) => `<option>${r}</option>`).join("")}</select><button>Search</button></form>
    <div class="card"><table id="users"></table></div>
    <h2>Reviews waiting for moderation</h2><div id="pending"></div>`;
  const figures = [["orders", "Orders"], ["paid_orders", "Paid orders"], ["gmv", "GMV"], ["refunds", "Refunds"], ["new_users", "New users"],
    ["active_shippers", "Active shippers"], ["course_signups", "Course sign-ups"], ["flash_sale_signups", "Flash-sale sign-ups"]];
  const drawStats = (c) => {
    $("#stats").innerHTML = figures.map(([k, label]) => `<div class="card"><div class="muted">${label}</div><div class="figure" data-stat="${k}">${
      k === "gmv" ? Object.entries(c.gmv || {}).map(([cur, n]) => money(n, cur)).join("<br>") || "0" : Number(c[k] || 0)}</div></div>`).join("");
  };
  const day = new Date().toISOString().slice(0, 10);
  $("#stats-day").textContent = `(${day}, UTC)`;
  const load = async () => {
    const from = `${day}T00:00:00Z`;
    const to = new Date(Date.parse(from) + 86_400_000).toISOString().replace(/\.\d+Z$/, "Z");
    drawStats((await api("GET", `/api/v1/admin/stats?from=${from}&to=${to}&granularity=day`)).totals);
  };
  live.subscribe("admin:stats", (msg) => { if (msg.data?.kind === "today" && msg.data.day === day) drawStats(msg.data); },
    () => load().catch(() => {}));
  onLeave(() => live.unsubscribe("admin:stats"));
  await load();

  const searchForm = $("#user-search");
  const drawUsers = async () => {
    const q = new URLSearchParams({ limit: "20" });
    if (searchForm.email.value.trim()) q.set("email", searchForm.email.value.trim());
    if (searchForm.role.value) q.set("role", searchForm.role.value);
    const page = await api("GET", `/api/v1/admin/users?${q}`);
    $("#users").innerHTML = `<tr><th>Email</th><th>Name</th><th>Role</th><th>State</th><th></th></tr>${page.items.map((u) => `<tr data-user="${u.id}">
      <td>${esc(u.email)}</td><td>${esc(u.name)}</td><td>${esc(u.role)}</td><td>${u.suspension ? `<span class="badge">suspended</span> ${esc(u.suspension.reason)}` : "active"}</td>
      <td>${u.id === auth.me.id ? "" : u.suspension ? `<button data-act="reactivate">Reactivate</button>` : `<button data-act="suspend">Suspend</button>`}</td></tr>`).join("")}`;
    $("#users").querySelectorAll("[data-act]").forEach((b) => (b.onclick = async () => {
      const id = b.closest("[data-user]").dataset.user;
      const body = b.dataset.act === "suspend" ? { reason: "suspended from the admin console" } : {};
      try { await api("POST", `/api/v1/admin/users/${id}/${b.dataset.act}`, body); await drawUsers(); } catch (e) { toast("Not changed", e.message); }
    }));
  };
  searchForm.onsubmit = (e) => { e.preventDefault(); drawUsers().catch((err) => toast("Search failed", err.message)); };
  await drawUsers();

  const draw = async () => {
    const page = await api("GET", "/api/v1/reviews/moderation/pending?limit=50");
    $("#pending").innerHTML = page.items.length ? page.items.map((r) => reviewCard(r, `<div class="muted">${esc(r.kind)} ${esc(r.subject_id).slice(0, 8)}… · ${r.reports} report(s)</div>
      <div class="row"><input name="note" maxlength="300" placeholder="Note (optional)"><button data-act="approve" class="primary">Approve</button><button data-act="reject">Reject</button></div>`)).join("")
      : `<p class="muted">Nothing waits for moderation.</p>`;
    $("#pending").querySelectorAll("[data-act]").forEach((b) => (b.onclick = async () => {
      const card = b.closest("[data-review]");
      const note = card.querySelector("input[name=note]").value.trim();
      try { await api("PUT", `/api/v1/reviews/${card.dataset.review}/${b.dataset.act}`, note ? { note } : {}); toast(b.dataset.act === "approve" ? "Approved" : "Rejected"); draw(); } catch (e) { toast("Not changed", e.message); }
    }));
  };
  await draw();
}

function queueCard(id, title, kind) {
  return `<div class="card queue" data-queue="${id}" data-kind="${kind}"><b>${esc(title)}</b>
    <div><span class="counter" data-remaining>…</span> <span class="muted">${kind === "sale" ? "units" : "seats"} left</span></div>
    <div class="bar"><div data-fill style="width:0"></div></div></div>`;
}

window.addEventListener("hashchange", render);
if (auth.me) watchNotifications();
render();

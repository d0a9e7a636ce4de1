// Livermore admin page: plain JavaScript, no build step.
// The token lives in sessionStorage (this tab only) and goes in the Authorization header of API
// calls; the live feed (EventSource cannot send headers) uses the HttpOnly cookie that
// POST /api/session sets.
"use strict";

const TOKEN_KEY = "livermore.token";
const MAX_ITEMS = 200;
const REFRESH_MS = 10000;

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  exchanges: new Map(), // id -> exchange with status
  alertIds: new Set(),
  source: null,
  refreshTimers: new Map(),
  poller: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function fmtTime(ms) {
  if (!ms) return "";
  const d = new Date(Number(ms));
  return d.toISOString().replace("T", " ").slice(0, 19) + "Z";
}

function fmtNum(x, digits = 2) {
  return typeof x === "number" ? x.toFixed(digits) : "";
}

class AuthError extends Error {}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.token}`, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers, credentials: "same-origin" });
  if (response.status === 401) throw new AuthError((await safeJson(response)).error || "unauthorized");
  const body = response.status === 204 ? {} : await safeJson(response);
  return { ok: response.ok, status: response.status, body };
}

async function safeJson(response) {
  try {
    return await response.json();
  } catch {
    return {};
  }
}

// -- sign in / out -------------------------------------------------------------------------------

async function signIn(token) {
  state.token = token;
  const session = await api("/api/session", { method: "POST" });
  if (!session.ok) throw new Error(session.body.error || `HTTP ${session.status}`);
  sessionStorage.setItem(TOKEN_KEY, token);
}

function showLogin(message) {
  stopLive();
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("token").focus();
}

async function start() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  try {
    await loadAll();
    openFeed();
    state.poller = setInterval(() => refreshExchanges().catch(handleError), REFRESH_MS);
  } catch (err) {
    handleError(err);
  }
}

function handleError(err) {
  if (err instanceof AuthError) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(`Sign-in refused: ${err.message}`);
  } else {
    console.error(err);
  }
}

function stopLive() {
  if (state.source) state.source.close();
  state.source = null;
  if (state.poller) clearInterval(state.poller);
  state.poller = null;
  setFeed("offline");
}

// -- loading -------------------------------------------------------------------------------------

async function loadAll() {
  await refreshExchanges();
  await Promise.all([loadAlerts(), loadLifecycle(), loadSymbols()]);
}

async function refreshExchanges() {
  const { body } = await api("/api/exchanges");
  for (const ex of body.exchanges || []) state.exchanges.set(ex.id, ex);
  renderExchanges();
}

async function refreshExchange(id) {
  const { ok, body } = await api(`/api/exchanges/${id}/status`);
  if (ok) {
    state.exchanges.set(body.id, body);
    renderExchanges();
  }
}

function scheduleRefresh(id) {
  // Lifecycle events come in bursts; one status read after the burst is enough.
  clearTimeout(state.refreshTimers.get(id));
  state.refreshTimers.set(id, setTimeout(() => refreshExchange(id).catch(handleError), 150));
}

async function loadAlerts() {
  const { body } = await api("/api/alerts?limit=100");
  const list = $("alerts");
  list.replaceChildren();
  state.alertIds.clear();
  // The API answers newest first; append in that order.
  for (const alert of body.alerts || []) addAlert(alert, { prepend: false, fresh: false });
  updateEmpty();
}

async function loadLifecycle() {
  const { body } = await api("/api/lifecycle?limit=50");
  const list = $("lifecycle");
  list.replaceChildren();
  for (const event of body.events || []) addLifecycle(event, { prepend: false, fresh: false });
  updateEmpty();
}

async function loadSymbols() {
  const container = $("symbols");
  const blocks = [];
  for (const ex of state.exchanges.values()) {
    const { ok, body } = await api(`/api/exchanges/${ex.id}/symbols`);
    if (ok) blocks.push(renderSymbols(ex, body));
  }
  container.replaceChildren(...blocks);
}

// -- rendering -----------------------------------------------------------------------------------

function stateBadge(value, testid) {
  const s = value || "unknown";
  return el("span", { class: "state", "data-state": s, "data-testid": testid, text: s });
}

function renderExchanges() {
  const rows = [...state.exchanges.values()]
    .sort((a, b) => a.id - b.id)
    .map((ex) => renderExchangeRow(ex));
  const tbody = $("exchange-rows");
  // Keep the last command's message across re-renders.
  const results = new Map([...tbody.querySelectorAll("[data-result-for]")].map(
    (n) => [n.dataset.resultFor, n.cloneNode(true)]));
  tbody.replaceChildren(...rows);
  for (const [name, node] of results) {
    const slot = tbody.querySelector(`[data-result-for="${CSS.escape(name)}"]`);
    if (slot) slot.replaceWith(node);
  }
}

function renderExchangeRow(ex) {
  const name = ex.name;
  const instances = el("ul", { class: "instances", "data-testid": `instances-${name}` });
  for (const inst of ex.instances || []) {
    instances.append(el("li", { "data-testid": `instance-${name}-${inst.instance_id}` },
      el("span", { text: inst.instance_id }),
      stateBadge(inst.connection_state, `instance-state-${name}-${inst.instance_id}`),
      inst.last_heartbeat ? el("span", { class: "muted", text: `♥ ${fmtTime(inst.last_heartbeat)}` }) : null,
      inst.last_error ? el("span", { class: "err", text: inst.last_error }) : null));
  }
  if (!(ex.instances || []).length) {
    instances.append(el("li", { class: "muted", text: "no ingestor running" }));
  }
  const startBtn = el("button", { type: "button", class: "start", "data-testid": `start-${name}`,
    text: "Start", onclick: () => command(ex, "start") });
  const stopBtn = el("button", { type: "button", class: "stop", "data-testid": `stop-${name}`,
    text: "Stop", onclick: () => command(ex, "stop") });
  const refreshBtn = el("button", { type: "button", class: "refresh",
    "data-testid": `refresh-symbols-${name}`, title: "Recompute the symbol tiers now",
    text: "Refresh symbols", onclick: () => command(ex, "refresh-symbols") });
  return el("tr", { "data-testid": `exchange-row-${name}`, "data-exchange-id": String(ex.id) },
    el("td", {}, el("strong", { text: ex.display_name || name }),
      el("div", { class: "muted", text: `${name} · id ${ex.id}` })),
    el("td", {}, stateBadge(ex.connection_state, `exchange-state-${name}`)),
    el("td", {}, instances),
    el("td", {}, startBtn, " ", stopBtn, " ", refreshBtn),
    el("td", {}, el("span", { class: "result", "data-result-for": name,
      "data-testid": `command-result-${name}` })));
}

async function command(ex, verb) {
  const row = document.querySelector(`[data-testid="exchange-row-${CSS.escape(ex.name)}"]`);
  row.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  const result = row.querySelector("[data-result-for]");
  result.className = "result";
  const who = verb === "refresh-symbols" ? "the symbol manager" : "the ingestors";
  result.textContent = `${verb}: waiting for ${who}…`;
  try {
    const { ok, body } = await api(`/api/exchanges/${ex.id}/${verb}`, { method: "POST" });
    const slot = document.querySelector(`[data-result-for="${CSS.escape(ex.name)}"]`);
    slot.className = `result ${ok ? "ok" : "fail"}`;
    slot.textContent = ok ? `${verb}: ${summarize(body.responses)}` : `${verb} failed: ${body.error}`;
    await refreshExchange(ex.id);
    if (ok && verb === "refresh-symbols") await loadSymbols();
  } catch (err) {
    handleError(err);
  } finally {
    document.querySelectorAll(`[data-testid="exchange-row-${CSS.escape(ex.name)}"] button`)
      .forEach((b) => { b.disabled = false; });
  }
}

function summarize(responses) {
  const finals = (responses || []).filter((r) => r.status !== "ack");
  return finals.map((r) => {
    const counts = ((r.data && r.data.exchanges) || []).map((e) =>
      `${e.exchange}: ${e.tier1} tier 1, ${e.tier2} tier 2`);
    return counts.length ? `${r.status} (${counts.join("; ")})` : `${r.status} (${r.instance_id})`;
  }).join(", ") || "acknowledged";
}

function renderSymbols(ex, body) {
  const rows = (body.symbols || []).map((s) =>
    el("tr", { "data-testid": `symbol-${ex.name}-${s.symbol}` },
      el("td", { text: s.symbol }),
      el("td", { class: "tier", "data-tier": String(s.tier), "data-testid": "symbol-tier",
        text: s.tier === 1 ? "1 · shared" : s.tier === 2 ? "2 · user" : String(s.tier ?? "") }),
      el("td", { text: s.volume_rank ?? "" }),
      el("td", { text: s.volume_24h ? Math.round(s.volume_24h).toLocaleString() : "" }),
      el("td", { text: s.user_count ? String(s.user_count) : "" })));
  const table = rows.length
    ? el("table", {}, el("thead", {}, el("tr", {}, ...["Symbol", "Tier", "Rank", "24h quote volume",
      "Users"].map((h) => el("th", { text: h })))), el("tbody", {}, ...rows))
    : el("p", { class: "empty", text: "No symbols recorded yet." });
  return el("div", { class: "symbols-block", "data-testid": `symbols-${ex.name}` },
    el("h3", { text: `${ex.display_name || ex.name} (${rows.length})` }), table);
}

function addAlert(alert, { prepend, fresh }) {
  if (!alert.id || state.alertIds.has(alert.id)) return;
  state.alertIds.add(alert.id);
  const item = el("li", { "data-testid": "alert-item", "data-alert-id": alert.id,
    class: fresh ? "new" : "" },
    el("span", { class: "tag exchange", "data-testid": "alert-exchange",
      text: alert.source_exchange_name || `exchange ${alert.source_exchange_id}` }),
    el("strong", { "data-testid": "alert-symbol", text: alert.symbol }),
    el("span", { class: "tag", text: alert.timeframe }),
    el("span", { "data-testid": "alert-label", text: alert.trigger_label }),
    el("span", { class: "muted", text: `MACD-V ${fmtNum(alert.trigger_value)}` }),
    alert.stage ? el("span", { class: "tag", text: alert.stage }) : null,
    el("span", { class: "muted", text: `@ ${alert.price ?? ""}` }),
    el("span", { class: "time", text: fmtTime(alert.triggered_at) }));
  const list = $("alerts");
  if (prepend) list.prepend(item); else list.append(item);
  trim(list);
}

function addLifecycle(event, { prepend, fresh }) {
  const item = el("li", { "data-testid": "lifecycle-item", class: fresh ? "new" : "" },
    el("span", { class: "tag exchange", text: event.exchange }),
    el("strong", { "data-testid": "lifecycle-event", text: event.event }),
    el("span", { class: "muted", text: event.instance_id }),
    event.error ? el("span", { class: "err", text: event.error }) : null,
    el("span", { class: "time", text: fmtTime(event.timestamp) }));
  const list = $("lifecycle");
  if (prepend) list.prepend(item); else list.append(item);
  trim(list);
}

function trim(list) {
  while (list.children.length > MAX_ITEMS) {
    const last = list.lastElementChild;
    if (last.dataset.alertId) state.alertIds.delete(last.dataset.alertId);
    last.remove();
  }
}

function updateEmpty() {
  $("alerts-empty").hidden = $("alerts").children.length > 0;
  $("lifecycle-empty").hidden = $("lifecycle").children.length > 0;
}

// -- live feed -----------------------------------------------------------------------------------

function setFeed(s) {
  const node = document.querySelector('[data-testid="feed-status"]');
  node.dataset.state = s;
  node.textContent = `live feed: ${s}`;
}

const STATE_OF_EVENT = {
  "exchange:connecting": "connecting",
  "exchange:connected": "connected",
  "exchange:disconnected": "disconnected",
  "exchange:idle": "idle",
};

function onLifecycle(event) {
  addLifecycle(event, { prepend: true, fresh: true });
  updateEmpty();
  const ex = state.exchanges.get(event.exchange_id);
  const next = STATE_OF_EVENT[event.event];
  if (ex && next) {
    // Show the transition at once; the status read that follows settles the whole picture.
    const inst = (ex.instances || []).find((i) => i.instance_id === event.instance_id);
    if (inst) inst.connection_state = next;
    else (ex.instances = ex.instances || []).push({ instance_id: event.instance_id, connection_state: next });
    renderExchanges();
  }
  scheduleRefresh(event.exchange_id);
}

function openFeed() {
  if (state.source) state.source.close();
  const source = new EventSource("/api/events");
  state.source = source;
  setFeed("connecting");
  let greeted = false;
  source.addEventListener("hello", () => {
    setFeed("live");
    // After an automatic reconnect, whatever was published during the gap is missing: reload.
    if (greeted) loadAll().catch(handleError);
    greeted = true;
  });
  source.addEventListener("alert", (e) => {
    addAlert(JSON.parse(e.data), { prepend: true, fresh: true });
    updateEmpty();
  });
  source.addEventListener("lifecycle", (e) => onLifecycle(JSON.parse(e.data)));
  source.addEventListener("resync", () => loadAll().catch(handleError));
  source.addEventListener("error", () => {
    if (source !== state.source) return;
    if (source.readyState === EventSource.CLOSED) {
      // Refused (the session cookie expired) or the gateway went away: renew and retry.
      setFeed("reconnecting");
      setTimeout(() => renewFeed().catch(handleError), 2000);
    } else {
      setFeed("reconnecting");
    }
  });
}

async function renewFeed() {
  if (!state.token) return;
  const session = await api("/api/session", { method: "POST" });
  if (session.ok) {
    openFeed();
    await loadAll();
  }
}

// -- wiring --------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("login-error").textContent = "";
    try {
      await signIn($("token").value.trim());
      $("token").value = "";
      await start();
    } catch (err) {
      state.token = "";
      showLogin(err instanceof AuthError ? `Sign-in refused: ${err.message}` : String(err.message || err));
    }
  });
  $("logout").addEventListener("click", async () => {
    try {
      await api("/api/session", { method: "DELETE" });
    } catch { /* signing out anyway */ }
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = "";
    showLogin("");
  });
  if (state.token) {
    signIn(state.token).then(start).catch(() => showLogin(""));
  } else {
    showLogin("");
  }
});

// A Livermore alert bot for Node.js (node-redis v4+): catches up, follows live, acts once per alert.
//
// The same design as examples/alert_bot.py (see docs/integration-guide.md):
//   1. subscribe to channel:alerts:{exchange_id} for each exchange first;
//   2. read the durable stream `stream:alerts` from the last entry id saved in a state file
//      (a first run starts from now; ALERT_BOT_FROM_START=1 replays the whole stream);
//   3. handle live messages, and every few seconds re-read the stream from the checkpoint
//      (moves the checkpoint on, and picks up anything pub/sub dropped: it is at-most-once);
//   4. skip any alert whose `id` was already handled (ids are saved with the checkpoint).
//
// Run it:
//   npm install redis          # node-redis; Node 18 or newer
//   LIVERMORE_REDIS_URL=redis://127.0.0.1:6379/0 ALERT_BOT_EXCHANGES=1,2 node alert-bot.mjs
//
// Settings: LIVERMORE_REDIS_URL, LIVERMORE_NAMESPACE (prefix of a namespaced deployment),
// ALERT_BOT_EXCHANGES (ids, default 1), ALERT_BOT_STATE (default alert-bot-state.json),
// ALERT_BOT_FROM_START=1.
//
// The Redis names below match libs/livermore_common/keys.py (KeySpace.alerts_channel and
// KeySpace.alert_stream). This file is documentation: the project's tests run the Python bot.

import { createClient } from 'redis';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

const namespace = process.env.LIVERMORE_NAMESPACE ?? '';
const alertsChannel = (exchangeId) => `${namespace}channel:alerts:${Number(exchangeId)}`;
const alertStream = `${namespace}stream:alerts`;

const url = process.env.LIVERMORE_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const exchanges = new Set(
  (process.env.ALERT_BOT_EXCHANGES ?? '1').split(',').filter(Boolean).map(Number),
);
const stateFile = process.env.ALERT_BOT_STATE ?? 'alert-bot-state.json';
const fromStart = ['1', 'true', 'yes'].includes((process.env.ALERT_BOT_FROM_START ?? '').toLowerCase());
const RECENT_IDS_KEPT = 5000;
const RECONCILE_EVERY_MS = 5000;

// -- what the bot does with an alert: replace this ---------------------------------------------
function onAlert(alert) {
  const when = new Date(alert.triggered_at).toISOString();
  console.log(
    `${when} ${alert.source_exchange_name} ${alert.symbol} ${alert.timeframe} ` +
      `${alert.trigger_label} macd_v=${alert.trigger_value.toFixed(2)} price=${alert.price} ` +
      `stage=${alert.stage} id=${alert.id}`,
  );
}

// -- checkpoint: last stream id read, and recently handled alert ids ---------------------------
const state = existsSync(stateFile)
  ? JSON.parse(readFileSync(stateFile, 'utf8'))
  : { last_id: null, recent_ids: [] };
const recent = new Set(state.recent_ids);

function saveState() {
  state.recent_ids = [...recent];
  writeFileSync(`${stateFile}.tmp`, JSON.stringify(state));
  renameSync(`${stateFile}.tmp`, stateFile); // never a torn state file
}

function handle(raw) {
  let alert;
  try {
    alert = JSON.parse(raw);
  } catch {
    console.error(`alert-bot: skipped a malformed message: ${String(raw).slice(0, 80)}`);
    return;
  }
  // The stream holds every exchange's alerts; the channels only ours.
  if (!exchanges.has(alert.source_exchange_id) || recent.has(alert.id)) return;
  recent.add(alert.id);
  while (recent.size > RECENT_IDS_KEPT) recent.delete(recent.values().next().value);
  onAlert(alert);
  saveState();
}

async function catchUp(client) {
  for (;;) {
    const start = state.last_id ? `(${state.last_id}` : '-';
    const entries = await client.xRange(alertStream, start, '+', { COUNT: 500 });
    if (entries.length === 0) return;
    for (const { id, message } of entries) {
      if (message.data !== undefined) handle(message.data); // one field per entry: `data`
      state.last_id = id;
    }
    saveState();
  }
}

const client = createClient({ url });
client.on('error', (err) => console.error(`alert-bot: redis: ${err.message}`));
await client.connect();
const subscriber = client.duplicate();
subscriber.on('error', (err) => console.error(`alert-bot: redis (subscriber): ${err.message}`));
await subscriber.connect();

// Subscribe first (awaited: the server confirmed), then catch up: nothing falls in between.
const channels = [...exchanges].map(alertsChannel);
await subscriber.subscribe(channels, (message) => handle(message));
if (state.last_id === null && !fromStart) {
  const newest = await client.xRevRange(alertStream, '+', '-', { COUNT: 1 });
  state.last_id = newest.length ? newest[0].id : '0-0';
  saveState();
}
await catchUp(client);
console.error(`alert-bot: caught up; listening on ${channels.join(', ')}`);

const timer = setInterval(() => catchUp(client).catch((err) => console.error(err)), RECONCILE_EVERY_MS);

async function shutdown() {
  clearInterval(timer);
  saveState();
  await subscriber.quit();
  await client.quit();
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);

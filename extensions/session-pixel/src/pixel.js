// The session pixel: Shopify's standard events -> batches posted to the app's collector.
//
// startPixel({analytics, browser, init, settings, customerPrivacy}) is what Shopify's register() calls with
// (src/index.js). Plain JavaScript, no imports, no build step, no fetch but the collector's: it runs the same in
// Shopify's strict sandbox (a web worker) and in a normal page given stand-ins for those objects.
//
// What it sends (docs/rfcs/session-tracking.md, "What the pixel posts"): one JSON body per batch,
//   {write_key, sent_at, pixel_version, events: [{event_id, name, client_id, seq, occurred_at, url, referrer,
//    user_agent, consent, customer_id?, order_id?, checkout_token?, email_sha256?, value?, currency?,
//    product_id?, properties?}]}
// as text/plain (a "simple" request: no CORS preflight) with fetch(..., {keepalive: true, credentials: "omit"}).
//
// In a test page: `<script type="module">import { startPixel } from "/pixel.js"; startPixel({analytics, browser,
// init, settings: {writeKey, collectorUrl}})</script>`, with `analytics.subscribe(name, cb)` and an async
// `browser.localStorage` as Shopify's. Headless Chromium's own User-Agent header says "HeadlessChrome", which the
// collector drops as a bot (it is on the crawler list): give the browser context a regular Chrome user agent.
//
// Delivery: a batch leaves when BATCH_SIZE events wait, FLUSH_MS after the first one, and at once on
// checkout_completed. Unsent events are also kept in the sandbox's localStorage, so a page change does not
// lose them: the next page sends them first. A 429 or 503 (Retry-After honoured) or a network error is retried
// with the same events, so the same event ids (the collector stores an event id once); any other 4xx is
// dropped (retrying cannot fix it); 2xx removes the events from storage.

export const PIXEL_VERSION = "1";
export const EVENTS = [
  "page_viewed",
  "product_viewed",
  "product_added_to_cart",
  "checkout_started",
  "checkout_completed",
];
const BATCH_SIZE = 20;
const FLUSH_MS = 2000;
const MAX_PENDING = 500; // the collector's batch limit; older events are dropped beyond it
const MAX_BACKOFF_MS = 60000;
const STORAGE_KEY = "session_pixel_pending_v1";
// A keepalive fetch may carry at most 64 KiB in flight: a batch is split to stay under it.
const MAX_BODY_CHARS = 60000;
// The collector's field limits: trimmed here so that a long URL never costs the batch.
const LIMITS = { id: 128, url: 2048, userAgent: 512 };

function text(value, limit) {
  if (value === undefined || value === null) return undefined;
  const s = String(value);
  return s.length > limit ? s.slice(0, limit) : s;
}

// Shopify ids come as "123" or "gid://shopify/Order/123": the number, or undefined.
function numericId(value) {
  if (value === undefined || value === null) return undefined;
  const match = /(\d{1,19})$/.exec(String(value));
  return match ? match[1] : undefined;
}

function amount(money) {
  if (!money || money.amount === undefined || money.amount === null) return {};
  const value = Number(money.amount);
  if (!Number.isFinite(value)) return {};
  const currency = typeof money.currencyCode === "string" ? money.currencyCode.toUpperCase() : undefined;
  return { value, currency: currency && /^[A-Z]{3}$/.test(currency) ? currency : undefined };
}

async function sha256Hex(value) {
  const subtle = globalThis.crypto && globalThis.crypto.subtle;
  if (!subtle || !globalThis.TextEncoder) return undefined; // no hash, no email: never the address itself
  const digest = await subtle.digest("SHA-256", new TextEncoder().encode(value));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function consentOf(privacy) {
  const p = privacy || {};
  return {
    analytics: p.analyticsProcessingAllowed === true,
    marketing: p.marketingAllowed === true,
    preferences: p.preferencesProcessingAllowed === true,
    sale_of_data: p.saleOfDataAllowed === true,
  };
}

// One Shopify event -> one collector event.
export async function eventFor(event, consent) {
  const context = event.context || {};
  const documentContext = context.document || {};
  const location = documentContext.location || {};
  const navigator = context.navigator || {};
  const data = event.data || {};
  const out = {
    event_id: text(event.id, LIMITS.id),
    name: event.name,
    client_id: text(event.clientId, LIMITS.id),
    seq: Number.isInteger(event.seq) && event.seq >= 0 ? event.seq : 0,
    occurred_at: event.timestamp || new Date().toISOString(),
    url: text(location.href, LIMITS.url),
    referrer: text(documentContext.referrer, LIMITS.url) || undefined,
    user_agent: text(navigator.userAgent, LIMITS.userAgent),
    consent,
  };
  if (event.name === "product_viewed" && data.productVariant) {
    const variant = data.productVariant;
    out.product_id = text(variant.id, LIMITS.id);
    Object.assign(out, amount(variant.price));
    if (variant.product && variant.product.title) out.properties = { title: text(variant.product.title, 200) };
  } else if (event.name === "product_added_to_cart" && data.cartLine) {
    const line = data.cartLine;
    out.product_id = text(line.merchandise && line.merchandise.id, LIMITS.id);
    Object.assign(out, amount(line.cost && line.cost.totalAmount));
    if (Number.isInteger(line.quantity)) out.properties = { quantity: line.quantity };
  } else if ((event.name === "checkout_started" || event.name === "checkout_completed") && data.checkout) {
    const checkout = data.checkout;
    out.checkout_token = text(checkout.token, LIMITS.id);
    Object.assign(out, amount(checkout.totalPrice));
    const order = checkout.order || {};
    out.order_id = event.name === "checkout_completed" ? numericId(order.id) : undefined;
    out.customer_id = numericId((order.customer && order.customer.id) || (checkout.customer && checkout.customer.id));
    if (typeof checkout.email === "string" && checkout.email.trim()) {
      out.email_sha256 = await sha256Hex(checkout.email.trim().toLowerCase());
    }
  }
  for (const key of Object.keys(out)) if (out[key] === undefined) delete out[key];
  return out;
}

export function startPixel({ analytics, browser, init, settings, customerPrivacy }) {
  const writeKey = settings && settings.writeKey;
  const collectorUrl = settings && settings.collectorUrl;
  if (!writeKey || !collectorUrl) return null; // not activated with settings: send nothing
  const storage = browser && browser.localStorage;
  let consent = consentOf(init && init.customerPrivacy);
  let queue = []; // built events not yet acknowledged, oldest first
  let timer = null;
  let sending = false;
  let urgent = false; // a checkout_completed waits: send as soon as the collector may be asked
  let retryAt = 0; // no send before this (Retry-After / backoff)
  let attempt = 0;
  const stats = { sent: 0, acknowledged: 0, dropped: 0, retries: 0 };

  if (customerPrivacy && typeof customerPrivacy.subscribe === "function") {
    customerPrivacy.subscribe("visitorConsentCollected", (e) => {
      consent = consentOf(e && e.customerPrivacy);
    });
  }

  async function persist() {
    if (!storage) return;
    try {
      if (queue.length) await storage.setItem(STORAGE_KEY, JSON.stringify(queue));
      else await storage.removeItem(STORAGE_KEY);
    } catch (_) {
      // storage refused (quota, privacy mode): the events stay in memory only
    }
  }

  function schedule(delay) {
    if (timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      flush();
    }, delay);
  }

  async function flush() {
    if (sending || !queue.length) return;
    if (Date.now() < retryAt) {
      schedule(retryAt - Date.now());
      return;
    }
    sending = true;
    urgent = false;
    let events = queue.slice(0, BATCH_SIZE);
    let body = "";
    for (;;) {
      body = JSON.stringify({
        write_key: writeKey,
        sent_at: new Date().toISOString(),
        pixel_version: PIXEL_VERSION,
        events,
      });
      if (body.length <= MAX_BODY_CHARS || events.length === 1) break;
      events = events.slice(0, Math.ceil(events.length / 2));
    }
    let retryAfterMs = null;
    try {
      stats.sent += 1;
      const response = await fetch(collectorUrl, {
        method: "POST",
        keepalive: true,
        credentials: "omit",
        headers: { "Content-Type": "text/plain;charset=UTF-8" },
        body,
      });
      if (response.status === 429 || response.status === 503 || response.status >= 500) {
        const header = Number(response.headers.get("Retry-After"));
        retryAfterMs = Number.isFinite(header) && header > 0 ? header * 1000 : null;
        throw new Error(`collector answered ${response.status}`);
      }
      // 2xx: stored (or already stored). Other 4xx: the batch can never be taken; drop it.
      if (response.status >= 400) stats.dropped += events.length;
      else stats.acknowledged += events.length;
      const sentIds = new Set(events.map((e) => e.event_id));
      queue = queue.filter((e) => !sentIds.has(e.event_id));
      attempt = 0;
      await persist();
    } catch (_) {
      attempt += 1;
      stats.retries += 1;
      const backoff = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(attempt - 1, 6));
      const wait = Math.max(retryAfterMs || 0, backoff * (0.5 + Math.random() / 2));
      retryAt = Date.now() + wait;
      sending = false;
      schedule(wait);
      return;
    }
    sending = false;
    if (queue.length >= BATCH_SIZE || (urgent && queue.length)) flush();
    else if (queue.length) schedule(FLUSH_MS);
  }

  async function enqueue(event) {
    const built = await eventFor(event, consent);
    if (!built.event_id || !built.client_id || !built.url) return;
    if (queue.some((e) => e.event_id === built.event_id)) return;
    queue.push(built);
    if (queue.length > MAX_PENDING) {
      stats.dropped += queue.length - MAX_PENDING;
      queue = queue.slice(queue.length - MAX_PENDING);
    }
    await persist();
    if (built.name === "checkout_completed") urgent = true;
    if ((urgent || queue.length >= BATCH_SIZE) && Date.now() >= retryAt) {
      if (timer !== null) {
        clearTimeout(timer);
        timer = null;
      }
      flush();
    } else {
      schedule(FLUSH_MS);
    }
  }

  const ready = (async () => {
    // Events an earlier page could not send: first in line, with their ids, so a resend is stored once.
    if (!storage) return;
    try {
      const saved = JSON.parse((await storage.getItem(STORAGE_KEY)) || "[]");
      if (Array.isArray(saved) && saved.length) {
        queue = saved.concat(queue).slice(-MAX_PENDING);
        flush();
      }
    } catch (_) {
      // unreadable storage: start afresh
    }
  })();

  for (const name of EVENTS) {
    analytics.subscribe(name, (event) => {
      ready.then(() => enqueue(event));
    });
  }
  return {
    stats,
    pending: () => queue.length,
    flush: () => ready.then(flush),
  };
}

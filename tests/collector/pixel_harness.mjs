// Runs extensions/session-pixel/src/pixel.js outside Shopify, as the browser test does in a page: stand-ins for
// the analytics, browser and init objects Shopify's register() hands it, and Shopify-shaped events.
//   node pixel_harness.mjs <pixel.js path> <scenario JSON>
// The scenario: {settings, storage (the localStorage to start with), events: [Shopify events], wait_ms}.
// Prints {stats, pending, storage} once the pixel has nothing left to send or wait_ms passed.
import { pathToFileURL } from "node:url";

const [pixelPath, scenarioJson] = process.argv.slice(2);
const scenario = JSON.parse(scenarioJson);
const { startPixel } = await import(pathToFileURL(pixelPath).href);

const handlers = {};
const store = new Map(Object.entries(scenario.storage || {}));
const analytics = { subscribe: (name, cb) => { (handlers[name] ||= []).push(cb); } };
const browser = {
  localStorage: {
    getItem: async (k) => (store.has(k) ? store.get(k) : null),
    setItem: async (k, v) => { store.set(k, String(v)); },
    removeItem: async (k) => { store.delete(k); },
  },
};
const init = { customerPrivacy: scenario.privacy || { analyticsProcessingAllowed: true } };
const pixel = startPixel({ analytics, browser, init, settings: scenario.settings });
if (pixel === null) {
  // Not activated: it must not even subscribe.
  console.log(JSON.stringify({ started: false, subscribed: Object.keys(handlers) }));
  process.exit(0);
}
for (const event of scenario.events) {
  for (const cb of handlers[event.name] || []) cb(event);
}
const deadline = Date.now() + (scenario.wait_ms || 15000);
await new Promise((r) => setTimeout(r, 50));
while (Date.now() < deadline && (pixel.pending() > 0 || scenario.wait_all)) {
  await new Promise((r) => setTimeout(r, 50));
  if (scenario.wait_all && pixel.stats.acknowledged + pixel.stats.dropped >= scenario.events.length) break;
}
console.log(JSON.stringify({ started: true, stats: pixel.stats, pending: pixel.pending(), storage: Object.fromEntries(store) }));
process.exit(0);

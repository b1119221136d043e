// Overview: traffic now, the day's cost, the fal keys and the services, refreshed every few
// seconds while the page is shown.

import { admin } from "../api.js";
import { clear, clock, dataTable, errorBox, h, ms, num, pct, usd } from "../dom.js";

const REFRESH_MS = 5000;

function stat(label, value, note) {
  return h("div", { class: "stat" },
    h("dt", {}, label),
    h("dd", {}, h("span", { class: "value" }, value), note ? h("small", {}, note) : null));
}

function trafficCard(data) {
  const t = data.traffic;
  const window = Math.round(t.window_seconds / 60) || 1;
  const today = data.today;
  return h("section", { class: "card", "aria-labelledby": "traffic-title" },
    h("h2", { id: "traffic-title" }, "Traffic"),
    h("dl", { class: "stats" },
      stat("Requests per minute", num(t.requests_per_minute), "last minute"),
      stat("Error rate", pct(t.error_rate), `last ${window} min`),
      stat("Latency p50", ms(t.latency_p50_ms), `last ${window} min`),
      stat("Latency p99", ms(t.latency_p99_ms), `last ${window} min`),
      stat("Cost today", today ? usd(today.cost) : "—",
        today ? `${num(today.requests)} requests (UTC)` : "no accounts database"),
      stat("In flight", num(t.in_flight), `${num(t.streams)} streaming`)));
}

function keyState(key) {
  if (key.state === "healthy") return h("span", { class: "badge ok" }, "Healthy");
  const why = key.bench_reason === "auth" ? "refused by fal" : "rate limited";
  return h("span", { class: "badge warn" }, `Benched until ${clock(key.benched_until)} (${why})`);
}

function keyLimit(key) {
  if (key.limit === null) return key.limit_learned ? "None learned yet" : "None";
  return key.limit_learned ? `${key.limit} (learned)` : `${key.limit} (fixed)`;
}

function keysCard(data) {
  const section = h("section", { class: "card", "aria-labelledby": "keys-title" },
    h("h2", { id: "keys-title" }, "fal keys"));
  if (data.mode === "passthrough") {
    section.append(h("p", {}, "Pass-through mode: the server holds no fal key; each client "
      + "sends its own."));
    return section;
  }
  const rows = data.keys.map((key) => [
    h("code", {}, key.fingerprint), keyState(key), keyLimit(key), num(key.in_flight)]);
  section.append(dataTable("The server's fal keys by fingerprint", [
    { title: "Key" }, { title: "State" }, { title: "Concurrency limit" },
    { title: "In flight", num: true }], rows));
  section.append(h("p", { class: "hint" }, "A fingerprint is sha256: and the first 12 hex digits "
    + "of the key's SHA-256 (printf %s \"$KEY\" | sha256sum)."));
  return section;
}

function upDown(label, state) {
  const text = { up: "Up", down: "Down", off: "Not configured" }[state] || state;
  const kind = { up: "ok", down: "bad", off: "muted" }[state] || "muted";
  return h("div", { class: "stat" },
    h("dt", {}, label), h("dd", {}, h("span", { class: `badge ${kind}` }, text)));
}

function servicesCard(data) {
  return h("section", { class: "card", "aria-labelledby": "services-title" },
    h("h2", { id: "services-title" }, "Services"),
    h("dl", { class: "stats" },
      upDown("Redis", data.redis),
      upDown("Database", data.database),
      h("div", { class: "stat" }, h("dt", {}, "Version"), h("dd", {}, data.version))));
}

export function renderOverview(container) {
  const status = h("p", { class: "hint", "aria-live": "off" });
  const body = h("div", { class: "grid" });
  container.append(status, body);
  let timer = null;
  let stopped = false;

  async function refresh() {
    timer = null;
    if (stopped) return;
    if (document.hidden) {
      timer = window.setTimeout(refresh, REFRESH_MS);
      return;
    }
    try {
      const data = await admin("overview");
      if (stopped) return;
      clear(body).append(trafficCard(data), keysCard(data), servicesCard(data));
      status.textContent = `Live: updated ${new Date().toLocaleTimeString()}, every ${REFRESH_MS / 1000} s.`;
    } catch (error) {
      if (stopped) return;
      clear(body).append(errorBox(error));
    }
    timer = window.setTimeout(refresh, REFRESH_MS);
  }

  refresh();
  return () => {
    stopped = true;
    if (timer !== null) window.clearTimeout(timer);
  };
}

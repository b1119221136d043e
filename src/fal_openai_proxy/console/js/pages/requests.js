// Requests: the request log, newest first, filtered by key, model, status and time, a page at
// a time; a request opens its details.

import { admin, models, query } from "../api.js";
import { clear, dataTable, errorBox, field, h, moment, ms, num, uid, usd, when } from "../dom.js";

const PAGE_SIZES = [25, 50, 100];
// The log's own names for callers that are not virtual keys.
const OTHER_CALLERS = [["static", "API_KEY (static)"], ["console", "Console playground"], ["open", "No key (open)"]];

function details(entry) {
  const rows = Object.entries(entry).filter(([name]) => !["prompt", "answer"].includes(name));
  const list = h("dl", { class: "details" }, rows.map(([name, value]) => [
    h("dt", {}, name),
    h("dd", {}, value === null || value === undefined ? "—"
      : name === "created_at" ? `${when(value)} (${value})` : String(value)),
  ]));
  const texts = ["prompt", "answer"].filter((name) => entry[name]).map((name) =>
    h("section", {}, h("h3", {}, name === "prompt" ? "Prompt" : "Answer"), h("pre", { class: "wrap" }, entry[name])));
  const close = h("button", { type: "button" }, "Close");
  const dialog = h("dialog", { "aria-labelledby": "request-title", class: "wide" },
    h("h2", { id: "request-title" }, `Request ${entry.request_id}`),
    list, texts, h("div", { class: "actions" }, close));
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  close.focus();
}

function tokens(entry) {
  if (entry.input_tokens === null && entry.output_tokens === null) return "—";
  return `${num(entry.input_tokens ?? 0)} / ${num(entry.output_tokens ?? 0)}`;
}

export function renderRequests(container) {
  const keySelect = h("select", {}, h("option", { value: "" }, "Every key"));
  const modelsList = h("datalist", { id: uid("models") });
  const modelInput = h("input", {
    type: "text", list: modelsList.id, placeholder: "Every model", spellcheck: "false", autocapitalize: "off",
  });
  const statusInput = h("input", { type: "number", min: 100, max: 599, inputmode: "numeric", placeholder: "Any" });
  const sinceInput = h("input", { type: "datetime-local" });
  const sizeSelect = h("select", {}, PAGE_SIZES.map((n) => h("option", { value: n, selected: n === 50 }, String(n))));
  const newer = h("button", { type: "button", class: "secondary", disabled: true }, "Newer");
  const older = h("button", { type: "button", class: "secondary", disabled: true }, "Older");
  const pageInfo = h("span", { class: "hint", "aria-live": "polite" });
  const results = h("div", { "aria-busy": "false" });
  const filters = h("form", { class: "toolbar filters", role: "search", "aria-label": "Filter requests" },
    field("Key", keySelect), field("Model", modelInput), modelsList, field("Status", statusInput),
    field("Since", sinceInput), field("Per page", sizeSelect),
    h("button", { type: "submit" }, "Filter"));
  container.append(filters, results, h("div", { class: "pager" }, newer, pageInfo, older));

  // `after` cursors of the pages before this one; [] on the first page.
  let cursors = [];
  let after = null;
  let generation = 0;

  async function fillChoices() {
    try {
      const { data } = await admin("keys");
      keySelect.append(...data.map((k) => h("option", { value: k.id }, k.name)),
        ...OTHER_CALLERS.map(([value, text]) => h("option", { value }, text)));
    } catch {
      keySelect.append(...OTHER_CALLERS.map(([value, text]) => h("option", { value }, text)));
    }
    try {
      modelsList.append(...(await models()).map((m) => h("option", { value: m.id })));
    } catch {
      // the model list only helps typing
    }
  }

  function since() {
    if (!sinceInput.value) return null;
    const time = new Date(sinceInput.value).getTime();
    return Number.isNaN(time) ? null : Math.floor(time / 1000);
  }

  async function load() {
    const mine = ++generation;
    results.setAttribute("aria-busy", "true");
    const params = {
      key_id: keySelect.value, model: modelInput.value.trim(), status: statusInput.value.trim(),
      since: since(), limit: sizeSelect.value, after,
    };
    try {
      const page = await admin(`requests${query(params)}`);
      if (mine !== generation) return;
      clear(results).append(table(page.data));
      newer.disabled = cursors.length === 0;
      older.disabled = !page.has_more;
      older.dataset.next = page.last_id ?? "";
      pageInfo.textContent = page.data.length
        ? `Page ${cursors.length + 1}: ${page.data.length} requests`
        : "";
    } catch (error) {
      if (mine === generation) clear(results).append(errorBox(error));
    } finally {
      if (mine === generation) results.setAttribute("aria-busy", "false");
    }
  }

  function table(entries) {
    if (!entries.length) return h("p", { class: "empty" }, "No request matches. Requests appear here a moment after they end.");
    const columns = [{ title: "Time" }, { title: "Key" }, { title: "Model" }, { title: "Endpoint" },
      { title: "Status", num: true }, { title: "Latency", num: true }, { title: "Tokens in / out" },
      { title: "Cost", num: true }];
    return dataTable("Requests, newest first; open one for its details", columns, entries.map((entry) => {
      const open = h("button", { type: "button", class: "link", "aria-haspopup": "dialog" }, moment(entry.created_at));
      open.addEventListener("click", () => details(entry));
      return {
        cells: [open, entry.key_name || entry.key_id, entry.model ?? "—", h("code", {}, entry.endpoint),
          h("span", { class: `badge ${entry.status < 400 ? "ok" : "bad"}` }, String(entry.status)),
          ms(entry.latency_ms), tokens(entry), usd(entry.cost)],
        props: {
          onclick: (event) => {
            if (event.target !== open) details(entry);
          },
        },
      };
    }), { class: "clickable" });
  }

  function restart() {
    cursors = [];
    after = null;
    load();
  }

  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    restart();
  });
  for (const control of [keySelect, sizeSelect, sinceInput]) control.addEventListener("change", restart);
  newer.addEventListener("click", () => {
    after = cursors.pop() ?? null;
    load();
  });
  older.addEventListener("click", () => {
    cursors.push(after);
    after = older.dataset.next || null;
    load();
  });
  fillChoices();
  load();
  return () => { generation += 1; };
}

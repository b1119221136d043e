// Usage: cost and requests per day, per model and per key over a chosen range of UTC days,
// as charts, and the same numbers as a CSV file.

import { admin, query } from "../api.js";
import { barChart, columnChart, figure } from "../chart.js";
import { announce, clear, errorBox, field, h, num, usd, utcDay } from "../dom.js";

const RANGES = [["7", "Last 7 days"], ["30", "Last 30 days"], ["90", "Last 90 days"], ["custom", "Chosen days"]];
const COLUMNS = ["requests", "errors", "input_tokens", "output_tokens", "images", "audio_seconds", "video_seconds", "cost"];

/** Every day from start to end (YYYY-MM-DD, UTC), the missing ones as zero. */
function everyDay(start, end, rows) {
  const byDay = new Map(rows.map((r) => [r.group, r]));
  const days = [];
  for (let t = Date.parse(`${start}T00:00:00Z`); t <= Date.parse(`${end}T00:00:00Z`); t += 86400000) {
    const day = new Date(t).toISOString().slice(0, 10);
    days.push(byDay.get(day) || { group: day, requests: 0, errors: 0, cost: 0 });
  }
  return days;
}

/** One CSV cell: quoted when needed, and never read as a formula by a spreadsheet. */
function cell(value) {
  if (value === null || value === undefined) return "";
  let text = String(value);
  if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function toCsv(groups) {
  const lines = [["group_by", "group", "name", ...COLUMNS].join(",")];
  for (const [groupBy, rows] of Object.entries(groups)) {
    for (const row of rows) {
      lines.push([groupBy, row.group, row.name ?? "", ...COLUMNS.map((c) => row[c] ?? 0)].map(cell).join(","));
    }
  }
  return `${lines.join("\r\n")}\r\n`;
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export function renderUsage(container) {
  const range = h("select", {}, RANGES.map(([value, text]) => h("option", { value, selected: value === "30" }, text)));
  const from = h("input", { type: "date", value: utcDay(-29), max: utcDay(0) });
  const to = h("input", { type: "date", value: utcDay(0), max: utcDay(0) });
  const csvButton = h("button", { type: "button", class: "secondary", disabled: true }, "Download CSV");
  const results = h("div", { class: "grid", "aria-live": "polite", "aria-busy": "false" });
  container.append(
    h("form", { class: "toolbar filters", onsubmit: (e) => e.preventDefault() },
      field("Range", range), field("From", from), field("To", to), csvButton),
    results);
  let latest = null;
  let generation = 0;

  function days() {
    if (range.value !== "custom") {
      from.value = utcDay(-(Number(range.value) - 1));
      to.value = utcDay(0);
    }
    return { start: from.value, end: to.value };
  }

  async function load() {
    const { start, end } = days();
    if (!start || !end || start > end) {
      clear(results).append(errorBox(new Error("Choose a first day on or before the last day.")));
      return;
    }
    const mine = ++generation;
    results.setAttribute("aria-busy", "true");
    try {
      const [byDay, byModel, byKey] = await Promise.all(["day", "model", "key"].map((groupBy) =>
        admin(`usage${query({ start, end, group_by: groupBy })}`).then((b) => b.data)));
      if (mine !== generation) return;
      latest = { start, end, groups: { day: byDay, model: byModel, key: byKey } };
      csvButton.disabled = false;
      draw(latest);
    } catch (error) {
      if (mine === generation) clear(results).append(errorBox(error));
    } finally {
      if (mine === generation) results.setAttribute("aria-busy", "false");
    }
  }

  function draw({ start, end, groups }) {
    const total = groups.day.reduce((sum, r) => ({
      cost: sum.cost + r.cost, requests: sum.requests + r.requests, errors: sum.errors + r.errors,
      tokens: sum.tokens + (r.input_tokens || 0) + (r.output_tokens || 0),
    }), { cost: 0, requests: 0, errors: 0, tokens: 0 });
    const daily = everyDay(start, end, groups.day);
    const costOf = (r) => ({ label: r.group, value: r.cost });
    const keyLabel = (r) => r.name || r.group;
    clear(results).append(
      h("section", { class: "card", "aria-label": "Totals" }, h("dl", { class: "stats" },
        h("div", { class: "stat" }, h("dt", {}, "Cost"), h("dd", {}, h("span", { class: "value" }, usd(total.cost)))),
        h("div", { class: "stat" }, h("dt", {}, "Requests"), h("dd", {}, h("span", { class: "value" }, num(total.requests)))),
        h("div", { class: "stat" }, h("dt", {}, "Errors"), h("dd", {}, h("span", { class: "value" }, num(total.errors)))),
        h("div", { class: "stat" }, h("dt", {}, "Tokens"), h("dd", {}, h("span", { class: "value" }, num(total.tokens)))))),
      figure("Cost per day", columnChart(daily.map(costOf), { title: "Cost per day", format: usd }), daily, [
        { title: "Day", value: (r) => r.group }, { title: "Cost", value: (r) => usd(r.cost), num: true },
        { title: "Requests", value: (r) => num(r.requests), num: true }]),
      figure("Requests per day", columnChart(daily.map((r) => ({ label: r.group, value: r.requests })),
        { title: "Requests per day", format: num }), daily, [
        { title: "Day", value: (r) => r.group }, { title: "Requests", value: (r) => num(r.requests), num: true },
        { title: "Errors", value: (r) => num(r.errors), num: true }]),
      figure("Cost per model", barChart(groups.model.slice(0, 12).map((r) => ({ label: r.group || "(no model)", value: r.cost })),
        { title: "Cost per model", format: usd }), groups.model, [
        { title: "Model", value: (r) => r.group || "(no model)" }, { title: "Cost", value: (r) => usd(r.cost), num: true },
        { title: "Requests", value: (r) => num(r.requests), num: true }]),
      figure("Cost per key", barChart(groups.key.slice(0, 12).map((r) => ({ label: keyLabel(r), value: r.cost })),
        { title: "Cost per key", format: usd }), groups.key, [
        { title: "Key", value: keyLabel }, { title: "Cost", value: (r) => usd(r.cost), num: true },
        { title: "Requests", value: (r) => num(r.requests), num: true }]));
  }

  range.addEventListener("change", () => {
    const custom = range.value === "custom";
    if (custom) from.focus();
    load();
  });
  for (const input of [from, to]) {
    input.addEventListener("change", () => {
      range.value = "custom";
      load();
    });
  }
  csvButton.addEventListener("click", () => {
    if (!latest) return;
    download(`usage-${latest.start}-to-${latest.end}.csv`, toCsv(latest.groups));
    announce("CSV downloaded.");
  });
  load();
  return () => { generation += 1; };
}

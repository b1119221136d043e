// Building the page: every value goes in as text (textContent, attributes, properties), never
// as HTML, so nothing a key name, model id or answer contains can become markup or script.

const SVG_NS = "http://www.w3.org/2000/svg";

const PROPERTIES = new Set(["value", "checked", "disabled", "hidden", "selected", "readOnly",
  "required", "multiple"]);

function apply(el, props) {
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = String(value);
    else if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (PROPERTIES.has(name)) el[name] = value;
    else if (value === false) continue;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An element: h("button", {type: "button", onclick}, "Text"). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  apply(el, props);
  append(el, children);
  return el;
}

/** An SVG element (charts). */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (name === "text") el.textContent = String(value);
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

let lastId = 0;
/** A unique id for label/for and aria-describedby pairs. */
export function uid(prefix = "id") {
  lastId += 1;
  return `${prefix}-${lastId}`;
}

/** A labelled form control: {wrap, input}. */
export function field(label, control, hint) {
  const id = control.id || uid("f");
  control.id = id;
  const parts = [h("label", { for: id }, label), control];
  if (hint) {
    const hintId = uid("hint");
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("small", { id: hintId, class: "hint" }, hint));
  }
  return h("div", { class: "field" }, parts);
}

/**
 * A data table. `columns`: [{title, num, bare}]; `rows`: arrays of cells (text or nodes), or
 * {cells, props} for a row with attributes or listeners. The first cell heads its row. On a
 * phone each row shows as a card labelled by its columns' titles; the explicit ARIA roles
 * keep it a table for screen readers whatever its CSS display.
 */
export function dataTable(caption, columns, rows, props = {}) {
  const head = h("thead", { role: "rowgroup" }, h("tr", { role: "row" }, columns.map((c) =>
    h("th", { scope: "col", role: "columnheader", class: c.num ? "num" : null }, c.title))));
  const body = h("tbody", { role: "rowgroup" }, rows.map((row) => {
    const { cells, props: rowProps } = Array.isArray(row) ? { cells: row, props: {} } : row;
    return h("tr", { role: "row", ...rowProps }, cells.map((cell, index) => {
      const column = columns[index];
      const cellProps = {
        class: column.num ? "num" : null,
        "data-label": column.bare ? null : column.title,
      };
      return index === 0
        ? h("th", { scope: "row", role: "rowheader", ...cellProps }, cell)
        : h("td", { role: "cell", ...cellProps }, cell);
    }));
  }));
  return h("div", { class: "table-wrap" },
    h("table", { role: "table", class: `data ${props.class || ""}`.trim() },
      h("caption", { class: "visually-hidden" }, caption), head, body));
}

/** A short message for everyone, screen readers included (the page's live region). */
export function announce(text) {
  const region = document.getElementById("announce");
  region.textContent = "";
  window.setTimeout(() => { region.textContent = text; }, 50);
}

/** An error shown where it happened, and read out. */
export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error.message || String(error));
}

// -- formatting -------------------------------------------------------------------------

const money = new Intl.NumberFormat(undefined, {
  style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 4,
});
const plain = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

const smallMoney = new Intl.NumberFormat(undefined, {
  style: "currency", currency: "USD", maximumSignificantDigits: 2,
});

export function usd(value) {
  if (value === null || value === undefined) return "—";
  // Cents and up to 4 decimals; a fraction of a cent to 2 significant digits ($0.000081).
  return value !== 0 && Math.abs(value) < 0.01 ? smallMoney.format(value) : money.format(value);
}

export function num(value) {
  if (value === null || value === undefined) return "—";
  return plain.format(value);
}

export function pct(value) {
  if (value === null || value === undefined) return "—";
  return `${(value * 100).toFixed(value < 0.1 ? 1 : 0)} %`;
}

export function ms(value) {
  if (value === null || value === undefined) return "—";
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)} ms`;
}

export function when(unix) {
  if (unix === null || unix === undefined) return "—";
  return new Date(unix * 1000).toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
}

/** A moment of the recent past: the time today, else the day and time. */
export function moment(unix) {
  const date = new Date(unix * 1000);
  const today = date.toDateString() === new Date().toDateString();
  return date.toLocaleString(undefined, today
    ? { hour: "2-digit", minute: "2-digit", second: "2-digit" }
    : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function clock(unix) {
  return new Date(unix * 1000).toLocaleTimeString();
}

/** A UTC day as YYYY-MM-DD, `offset` days from today. */
export function utcDay(offset = 0) {
  return new Date(Date.now() + offset * 86400000).toISOString().slice(0, 10);
}

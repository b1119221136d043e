// Keys: the virtual keys with their spend against budget; create (the secret shown once),
// edit, disable and delete.

import { admin, ApiError } from "../api.js";
import { announce, clear, dataTable, errorBox, field, h, usd, when } from "../dom.js";

const PERIODS = [["", "Whole life"], ["day", "Day"], ["week", "Week"], ["month", "Month"]];

function budgetCell(key) {
  if (key.max_budget === null) return h("span", {}, usd(key.spend), h("small", {}, " no budget"));
  const spent = key.budget_period ? key.period_spend : key.spend;
  const meter = h("meter", {
    min: 0, max: key.max_budget, value: Math.min(spent, key.max_budget),
    high: key.max_budget * 0.8, optimum: 0,
    "aria-label": `Spent ${usd(spent)} of ${usd(key.max_budget)}`,
  });
  const period = key.budget_period ? ` a ${key.budget_period}` : "";
  return h("span", { class: "spend" }, h("span", {}, `${usd(spent)} of ${usd(key.max_budget)}${period}`), meter);
}

function statusBadge(key) {
  if (key.disabled) return h("span", { class: "badge muted" }, "Disabled");
  if (key.expires_at !== null && key.expires_at * 1000 <= Date.now()) {
    return h("span", { class: "badge bad" }, "Expired");
  }
  return h("span", { class: "badge ok" }, "Active");
}

/** "2025-01-31T12:00" (local) <-> unix time. */
function toLocalInput(unix) {
  if (unix === null || unix === undefined) return "";
  const d = new Date(unix * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fromLocalInput(text) {
  if (!text) return null;
  const time = new Date(text).getTime();
  return Number.isNaN(time) ? undefined : Math.floor(time / 1000);
}

/** The fields of a key's form, filled from `key` (for an edit). */
function keyFields(key) {
  const inputs = {
    name: h("input", { type: "text", required: true, maxlength: 200, value: key?.name ?? "" }),
    models: h("input", {
      type: "text", value: key?.models ? key.models.join(", ") : "",
      placeholder: "openai/*, google/gemini-2.5-flash", spellcheck: "false", autocapitalize: "off",
    }),
    budget: h("input", {
      type: "number", min: 0, step: "0.01", inputmode: "decimal",
      value: key?.max_budget ?? "",
    }),
    period: h("select", {}, PERIODS.map(([value, text]) =>
      h("option", { value, selected: (key?.budget_period ?? "") === value }, text))),
    rpm: h("input", { type: "number", min: 1, step: 1, inputmode: "numeric", value: key?.rpm ?? "" }),
    expires: h("input", { type: "datetime-local", value: toLocalInput(key?.expires_at) }),
  };
  const fields = [
    field("Name", inputs.name, "Who or what the key is for."),
    field("Models", inputs.models, "Comma-separated model globs. Empty: every model."),
    field("Budget (USD)", inputs.budget, "Empty: no budget."),
    field("Budget period", inputs.period, "The budget resets each period (UTC)."),
    field("Requests per minute", inputs.rpm, "Empty: no limit of its own."),
    field("Expires", inputs.expires, "Your local time. Empty: never."),
  ];
  return { inputs, fields };
}

/** The admin API's body from the form; null clears a limit. A message for a bad value. */
function bodyOf(inputs) {
  const models = inputs.models.value.split(",").map((m) => m.trim()).filter(Boolean);
  const budget = inputs.budget.value.trim();
  const rpm = inputs.rpm.value.trim();
  const expires = fromLocalInput(inputs.expires.value);
  if (!inputs.name.value.trim()) return { problem: "Give the key a name.", input: inputs.name };
  if (budget && !(Number(budget) >= 0)) return { problem: "The budget is a number of dollars.", input: inputs.budget };
  if (rpm && !(Number.isInteger(Number(rpm)) && Number(rpm) >= 1)) {
    return { problem: "Requests per minute is a whole number, 1 or more.", input: inputs.rpm };
  }
  if (expires === undefined) return { problem: "The expiry is not a date and time.", input: inputs.expires };
  return {
    body: {
      name: inputs.name.value.trim(),
      models: models.length ? models : null,
      max_budget: budget ? Number(budget) : null,
      budget_period: inputs.period.value || null,
      rpm: rpm ? Number(rpm) : null,
      expires_at: expires,
    },
  };
}

/** A modal dialog; resolves when closed. */
function openDialog(title, build) {
  const heading = h("h2", { id: "dialog-title" }, title);
  const dialog = h("dialog", { "aria-labelledby": "dialog-title" }, heading);
  const close = () => dialog.close();
  build(dialog, close);
  document.body.append(dialog);
  dialog.addEventListener("close", () => dialog.remove());
  dialog.showModal();
  return dialog;
}

function copyButton(input) {
  const button = h("button", { type: "button", class: "secondary" }, "Copy");
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      input.select(); // no clipboard API over plain http: select it for Ctrl+C
      document.execCommand("copy");
    }
    announce("Key copied.");
    button.textContent = "Copied";
  });
  return button;
}

function showSecret(dialog, created, done) {
  const secret = h("input", {
    type: "text", readOnly: true, value: created.key, class: "secret",
    spellcheck: "false", autocomplete: "off",
  });
  const finish = h("button", { type: "button" }, "Done");
  finish.addEventListener("click", () => {
    secret.value = ""; // the secret leaves the page with the dialog
    done();
  });
  clear(dialog).append(
    h("h2", { id: "dialog-title" }, `Key “${created.name}” created`),
    h("p", {}, "Copy the key now: it is shown this one time only. Clients send it as "
      + "Authorization: Bearer <key>."),
    field("New key", secret),
    h("div", { class: "actions" }, copyButton(secret), finish));
  secret.focus();
  secret.select();
}

function keyForm(dialog, { key, submitLabel, onSubmit, close }) {
  const { inputs, fields } = keyFields(key);
  const problem = h("p", { class: "error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit" }, submitLabel);
  const cancel = h("button", { type: "button", class: "secondary", onclick: close }, "Cancel");
  const form = h("form", { method: "dialog", novalidate: true }, fields, problem,
    h("div", { class: "actions" }, submit, cancel));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.hidden = true;
    const result = bodyOf(inputs);
    if (result.problem) {
      problem.textContent = result.problem;
      problem.hidden = false;
      result.input.focus();
      return;
    }
    submit.disabled = true;
    try {
      await onSubmit(result.body);
    } catch (error) {
      problem.textContent = error.message;
      problem.hidden = false;
      const bad = error instanceof ApiError && error.param ? {
        name: inputs.name, models: inputs.models, max_budget: inputs.budget,
        budget_period: inputs.period, rpm: inputs.rpm, expires_at: inputs.expires,
      }[error.param.split(/[.[]/)[0]] : null;
      (bad || inputs.name).focus();
    } finally {
      submit.disabled = false;
    }
  });
  dialog.append(form);
  inputs.name.focus();
}

export function renderKeys(container) {
  const createButton = h("button", { type: "button" }, "Create key");
  const listArea = h("div", {});
  container.append(
    h("div", { class: "toolbar" },
      h("p", { class: "hint" }, "Virtual keys stand for the server's fal keys, each with its own "
        + "models, budget, rate and expiry."),
      createButton),
    listArea);

  async function load() {
    try {
      const { data } = await admin("keys");
      clear(listArea).append(table(data));
    } catch (error) {
      clear(listArea).append(errorBox(error));
    }
  }

  function row(key) {
    const actions = h("div", { class: "row-actions" });
    const nameId = `key-name-${key.id}`;
    const edit = h("button", { type: "button", class: "secondary", "aria-describedby": nameId }, "Edit");
    const toggle = h("button", { type: "button", class: "secondary", "aria-describedby": nameId },
      key.disabled ? "Enable" : "Disable");
    const remove = h("button", { type: "button", class: "danger", "aria-describedby": nameId }, "Delete");
    edit.addEventListener("click", () => openDialog(`Edit “${key.name}”`, (dialog, close) => {
      keyForm(dialog, {
        key, submitLabel: "Save", close,
        onSubmit: async (body) => {
          await admin(`keys/${encodeURIComponent(key.id)}`, { method: "PATCH", json: body });
          close();
          announce(`Key ${body.name} saved.`);
          load();
        },
      });
    }));
    toggle.addEventListener("click", async () => {
      toggle.disabled = true;
      try {
        await admin(`keys/${encodeURIComponent(key.id)}`, {
          method: "PATCH", json: { disabled: !key.disabled },
        });
        announce(`Key ${key.name} ${key.disabled ? "enabled" : "disabled"}.`);
        await load();
      } catch (error) {
        actions.append(errorBox(error));
        toggle.disabled = false;
      }
    });
    remove.addEventListener("click", () => {
      const confirm = h("button", { type: "button", class: "danger", "aria-describedby": nameId }, "Confirm");
      const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
      const question = h("span", {}, "Delete this key for good?");
      clear(actions).append(question, confirm, cancel);
      cancel.addEventListener("click", () => {
        clear(actions).append(edit, toggle, remove);
        remove.focus();
      });
      confirm.addEventListener("click", async () => {
        confirm.disabled = true;
        try {
          await admin(`keys/${encodeURIComponent(key.id)}`, { method: "DELETE" });
          announce(`Key ${key.name} deleted.`);
          await load();
          createButton.focus();
        } catch (error) {
          actions.append(errorBox(error));
          confirm.disabled = false;
        }
      });
      confirm.focus();
    });
    actions.append(edit, toggle, remove);
    return [
      h("span", { id: nameId }, key.name),
      h("code", { class: "nowrap" }, `sk-fal-…${key.key_hint}`),
      key.models ? key.models.join(", ") : h("span", { class: "muted" }, "All"),
      budgetCell(key),
      key.rpm ?? "—",
      key.expires_at === null ? "Never" : when(key.expires_at),
      statusBadge(key),
      actions,
    ];
  }

  function table(keys) {
    if (!keys.length) return h("p", { class: "empty" }, "No virtual keys yet. Create one to give a client its own key.");
    return dataTable("Virtual keys", [
      { title: "Name" }, { title: "Key" }, { title: "Models" }, { title: "Spend" },
      { title: "RPM", num: true }, { title: "Expires" }, { title: "Status" },
      { title: "Actions", bare: true }], keys.map(row));
  }

  createButton.addEventListener("click", () => openDialog("Create a key", (dialog, close) => {
    keyForm(dialog, {
      submitLabel: "Create", close,
      onSubmit: async (body) => {
        const clean = Object.fromEntries(Object.entries(body).filter(([, v]) => v !== null));
        const response = await admin("keys", { method: "POST", json: clean });
        showSecret(dialog, response, close);
        announce(`Key ${response.name} created. Copy it now: it is shown once.`);
        load();
      },
    });
  }));

  load();
  return () => document.querySelectorAll("dialog").forEach((d) => d.close());
}

// Models: every model the proxy serves, with its kind, its route and its fal app.

import { models } from "../api.js";
import { clear, dataTable, errorBox, field, h } from "../dom.js";

const KINDS = [["", "Every kind"], ["chat", "Chat"], ["image", "Image"], ["edit", "Image edit"],
  ["transcription", "Transcription"], ["speech", "Speech"], ["video", "Video"]];
const KIND_NAMES = Object.fromEntries(KINDS);
const OPENROUTER_APP = "openrouter/router/openai/v1";

export function renderModels(container) {
  const search = h("input", { type: "search", placeholder: "Part of an id or app", spellcheck: "false", autocapitalize: "off" });
  const kind = h("select", {}, KINDS.map(([value, text]) => h("option", { value }, text)));
  const count = h("p", { class: "hint", "aria-live": "polite" });
  const legend = h("p", { class: "hint" }, "Chat models go to fal's prompt app (MODEL_ROUTES "
    + "prompt), to fal's OpenAI-compatible route (openai), or to the prompt app unless a "
    + "request needs what only the OpenAI route honours, such as tools (auto).");
  const results = h("div", {});
  container.append(
    h("form", { class: "toolbar filters", role: "search", "aria-label": "Filter models", onsubmit: (e) => e.preventDefault() },
      field("Filter", search), field("Kind", kind)),
    legend, count, results);
  let all = [];

  function draw() {
    const text = search.value.trim().toLowerCase();
    const shown = all.filter((m) => (!kind.value || m.kind === kind.value)
      && (!text || m.id.toLowerCase().includes(text) || m.fal_app.toLowerCase().includes(text)));
    count.textContent = `${shown.length} of ${all.length} models`;
    clear(results).append(dataTable("Models served by this proxy",
      [{ title: "Model" }, { title: "Kind" }, { title: "Route" }, { title: "fal app" }],
      shown.map((m) => [
        h("code", {}, m.id),
        KIND_NAMES[m.kind] || m.kind,
        h("span", {}, h("code", {}, m.route),
          m.model_route ? [" ", h("span", { class: "badge" }, m.model_route)] : null),
        h("span", {}, h("code", {}, m.fal_app),
          m.model_route === "auto" && m.fal_app !== OPENROUTER_APP
            ? h("small", { class: "block" }, `or ${OPENROUTER_APP}`) : null),
      ])));
  }

  models().then((data) => {
    all = data;
    draw();
  }).catch((error) => clear(results).append(errorBox(error)));
  search.addEventListener("input", draw);
  kind.addEventListener("change", draw);
  return null;
}

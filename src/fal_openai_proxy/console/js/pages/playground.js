// Playground: try a model through the proxy's own OpenAI endpoints (what works here works
// for clients): chat streamed as it comes, an image, speech, a transcription.

import { call, models, session } from "../api.js";
import { announce, clear, errorBox, field, h, uid } from "../dom.js";
import { events } from "../sse.js";

const TABS = [
  { name: "Chat", kind: "chat", fallback: "google/gemini-2.5-flash" },
  { name: "Image", kind: "image", fallback: "fal-ai/flux/schnell" },
  { name: "Speech", kind: "speech", fallback: "tts-1" },
  { name: "Transcription", kind: "transcription", fallback: "whisper-1" },
];
const VOICES = ["alloy", "echo", "nova", "onyx"];
const SIZES = ["1024x1024", "512x512", "1792x1024", "1024x1792"];

/** The image type of base64 data, from its first bytes. */
function imageType(b64) {
  if (b64.startsWith("/9j/")) return "image/jpeg";
  if (b64.startsWith("UklGR")) return "image/webp";
  if (b64.startsWith("R0lGOD")) return "image/gif";
  return "image/png";
}

function resultRegion() {
  return h("div", { role: "region", "aria-label": "Result", class: "result", "aria-live": "polite" },
    h("p", { class: "muted" }, "Nothing yet."));
}

export function renderPlayground(container, { params }) {
  const modelSelect = h("select", {});
  const apiKey = h("input", { type: "password", autocomplete: "off", spellcheck: "false", autocapitalize: "off" });
  const keyHint = session.mode === "passthrough"
    ? "Pass-through mode: enter a fal key of yours (the server holds none)."
    : "Empty: your console session. A virtual key here tries what its client would get.";
  const tablist = h("div", { role: "tablist", "aria-label": "What to try", class: "tabs" });
  const panels = h("div", {});
  container.append(
    h("form", { class: "toolbar filters", onsubmit: (event) => event.preventDefault() },
      h("input", { type: "text", name: "username", autocomplete: "off", value: "client", hidden: true }),
      field("Model", modelSelect), field("API key (optional)", apiKey, keyHint)),
    tablist, panels);

  let available = [];
  const chosen = {}; // the model picked on each tab
  let current = null;
  const stoppers = [];
  const key = () => apiKey.value.trim() || undefined;

  function fillModels(tab) {
    const ids = available.filter((m) => m.kind === tab.kind).map((m) => m.id);
    if (!ids.length) ids.push(tab.fallback);
    const wanted = chosen[tab.kind] || params.get("model") || (ids.includes(tab.fallback) ? tab.fallback : ids[0]);
    clear(modelSelect).append(...ids.map((id) => h("option", { value: id, selected: id === wanted }, id)));
  }
  modelSelect.addEventListener("change", () => { chosen[current.kind] = modelSelect.value; });

  const built = TABS.map((tab) => {
    const tabId = uid("tab");
    const panelId = uid("panel");
    const button = h("button", {
      type: "button", role: "tab", id: tabId, "aria-controls": panelId, "aria-selected": "false", tabindex: "-1",
    }, tab.name);
    const panel = h("div", { role: "tabpanel", id: panelId, "aria-labelledby": tabId, hidden: true, class: "panel" });
    tablist.append(button);
    panels.append(panel);
    const builders = { chat: chatPanel, image: imagePanel, speech: speechPanel, transcription: transcriptionPanel };
    stoppers.push(builders[tab.kind](panel, () => modelSelect.value, key));
    button.addEventListener("click", () => select(tab));
    return { tab, button, panel };
  });

  function select(tab, focus = false) {
    current = tab;
    for (const item of built) {
      const on = item.tab === tab;
      item.button.setAttribute("aria-selected", String(on));
      item.button.tabIndex = on ? 0 : -1;
      item.panel.hidden = !on;
      if (on && focus) item.button.focus();
    }
    fillModels(tab);
  }

  tablist.addEventListener("keydown", (event) => {
    const index = TABS.indexOf(current);
    const moves = { ArrowRight: 1, ArrowLeft: -1, Home: -index, End: TABS.length - 1 - index };
    if (!(event.key in moves)) return;
    event.preventDefault();
    select(TABS[(index + moves[event.key] + TABS.length) % TABS.length], true);
  });

  const first = TABS.find((t) => t.name.toLowerCase() === params.get("tab")) || TABS[0];
  select(first);
  models().then((data) => {
    available = data;
    fillModels(current);
  }).catch(() => {}); // the fallbacks stay

  return () => stoppers.forEach((stop) => stop && stop());
}

// -- chat ------------------------------------------------------------------------------------

function chatPanel(panel, model, key) {
  const transcript = h("div", { role: "region", "aria-label": "Response", class: "transcript", "aria-live": "off" },
    h("p", { class: "muted" }, "The conversation appears here, token by token."));
  const message = h("textarea", { rows: 3, placeholder: "Say hello", required: true });
  const reasoning = h("input", { type: "checkbox" });
  const send = h("button", { type: "submit" }, "Send");
  const stop = h("button", { type: "button", class: "secondary", disabled: true }, "Stop");
  const reset = h("button", { type: "button", class: "secondary" }, "Clear");
  const form = h("form", { class: "composer" },
    field("Message", message, "Ctrl+Enter sends."),
    h("div", { class: "actions" },
      h("label", { class: "check" }, reasoning, "Ask for reasoning"),
      send, stop, reset));
  panel.append(transcript, form);
  let history = [];
  let controller = null;

  message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  stop.addEventListener("click", () => controller && controller.abort());
  reset.addEventListener("click", () => {
    if (controller) controller.abort();
    history = [];
    clear(transcript).append(h("p", { class: "muted" }, "The conversation appears here, token by token."));
    message.focus();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = message.value.trim();
    if (!text || controller) return;
    if (!history.length) clear(transcript);
    history.push({ role: "user", content: text });
    message.value = "";
    transcript.append(h("div", { class: "turn user" }, h("span", { class: "who" }, "You"), h("p", {}, text)));
    const thinking = h("div", { class: "reasoning" });
    const thoughts = h("details", { class: "thoughts", open: true, hidden: true }, h("summary", {}, "Reasoning"), thinking);
    const answer = h("p", { class: "answer" });
    const turn = h("div", { class: "turn assistant" }, h("span", { class: "who" }, model()), thoughts, answer);
    transcript.append(turn);
    controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    transcript.setAttribute("aria-busy", "true");
    let content = "";
    try {
      const body = {
        model: model(), messages: history, stream: true, stream_options: { include_usage: true },
      };
      if (reasoning.checked) body.reasoning_effort = "low";
      const response = await call("v1/chat/completions", { method: "POST", json: body, signal: controller.signal, apiKey: key() });
      for await (const chunk of events(response)) {
        if (chunk.error) throw new Error(chunk.error.message || "The stream failed.");
        const delta = chunk.choices?.[0]?.delta || {};
        if (delta.reasoning_content) {
          thoughts.hidden = false;
          thinking.append(delta.reasoning_content);
        }
        if (delta.content) {
          content += delta.content;
          answer.append(delta.content); // a text node per piece, as it comes
        }
        if (chunk.usage) {
          turn.append(h("small", { class: "usage" }, `${chunk.usage.prompt_tokens} tokens in, ${chunk.usage.completion_tokens} out`));
        }
      }
      history.push({ role: "assistant", content });
      announce("Answer complete.");
    } catch (error) {
      if (error.name === "AbortError") {
        turn.append(h("small", { class: "muted" }, "Stopped."));
        if (content) history.push({ role: "assistant", content });
        announce("Stopped.");
      } else {
        turn.append(errorBox(error));
        history.pop(); // the question that failed can be asked again
      }
    } finally {
      controller = null;
      send.disabled = false;
      stop.disabled = true;
      transcript.setAttribute("aria-busy", "false");
      message.focus();
    }
  });
  return () => controller && controller.abort();
}

// -- image -----------------------------------------------------------------------------------

function imagePanel(panel, model, key) {
  const prompt = h("input", { type: "text", placeholder: "A lighthouse at dawn, watercolour" });
  const size = h("select", {}, SIZES.map((v) => h("option", { value: v }, v)));
  const generate = h("button", { type: "submit" }, "Generate");
  const result = resultRegion();
  const form = h("form", { class: "composer" }, field("Prompt", prompt), field("Size", size),
    h("div", { class: "actions" }, generate));
  panel.append(form, result);
  let controller = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!prompt.value.trim()) {
      prompt.focus();
      return;
    }
    controller = new AbortController();
    generate.disabled = true;
    clear(result).append(h("p", { class: "muted" }, "Generating…"));
    result.setAttribute("aria-busy", "true");
    try {
      const response = await call("v1/images/generations", {
        method: "POST", signal: controller.signal, apiKey: key(),
        json: { model: model(), prompt: prompt.value.trim(), n: 1, size: size.value, response_format: "b64_json" },
      });
      const body = await response.json();
      const image = body.data[0];
      const src = `data:${imageType(image.b64_json)};base64,${image.b64_json}`;
      clear(result).append(h("img", { src, alt: `Generated: ${prompt.value.trim()}`, class: "generated" }),
        image.revised_prompt ? h("p", { class: "hint" }, image.revised_prompt) : null);
      announce("Image ready.");
    } catch (error) {
      if (error.name !== "AbortError") clear(result).append(errorBox(error));
    } finally {
      controller = null;
      generate.disabled = false;
      result.setAttribute("aria-busy", "false");
    }
  });
  return () => controller && controller.abort();
}

// -- speech ----------------------------------------------------------------------------------

function speechPanel(panel, model, key) {
  const text = h("textarea", { rows: 3, placeholder: "Hello from the proxy." });
  const voice = h("select", {}, VOICES.map((v) => h("option", { value: v }, v)));
  const speak = h("button", { type: "submit" }, "Speak");
  const result = resultRegion();
  const form = h("form", { class: "composer" }, field("Text", text), field("Voice", voice),
    h("div", { class: "actions" }, speak));
  panel.append(form, result);
  let url = null;
  let controller = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!text.value.trim()) {
      text.focus();
      return;
    }
    controller = new AbortController();
    speak.disabled = true;
    clear(result).append(h("p", { class: "muted" }, "Speaking…"));
    try {
      const response = await call("v1/audio/speech", {
        method: "POST", signal: controller.signal, apiKey: key(),
        json: { model: model(), input: text.value.trim(), voice: voice.value },
      });
      const blob = await response.blob();
      if (url) URL.revokeObjectURL(url);
      url = URL.createObjectURL(blob);
      const audio = h("audio", { controls: true, src: url, "aria-label": "Speech" });
      clear(result).append(audio);
      audio.play().catch(() => {}); // the browser may want a click on play first
      announce("Speech ready.");
    } catch (error) {
      if (error.name !== "AbortError") clear(result).append(errorBox(error));
    } finally {
      controller = null;
      speak.disabled = false;
    }
  });
  return () => {
    if (controller) controller.abort();
    if (url) URL.revokeObjectURL(url);
  };
}

// -- transcription ---------------------------------------------------------------------------

function transcriptionPanel(panel, model, key) {
  const file = h("input", { type: "file", accept: "audio/*,.mp3,.mp4,.mpeg,.mpga,.m4a,.wav,.webm" });
  const transcribe = h("button", { type: "submit" }, "Transcribe");
  const result = resultRegion();
  const form = h("form", { class: "composer" }, field("Audio file", file, "mp3, mp4, m4a, wav or webm."),
    h("div", { class: "actions" }, transcribe));
  panel.append(form, result);
  let controller = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!file.files.length) {
      file.focus();
      return;
    }
    const data = new FormData();
    data.append("file", file.files[0]);
    data.append("model", model());
    controller = new AbortController();
    transcribe.disabled = true;
    clear(result).append(h("p", { class: "muted" }, "Transcribing…"));
    try {
      const response = await call("v1/audio/transcriptions", { method: "POST", form: data, signal: controller.signal, apiKey: key() });
      const body = await response.json();
      clear(result).append(h("p", { class: "transcription" }, body.text));
      announce("Transcription ready.");
    } catch (error) {
      if (error.name !== "AbortError") clear(result).append(errorBox(error));
    } finally {
      controller = null;
      transcribe.disabled = false;
    }
  });
  return () => controller && controller.abort();
}

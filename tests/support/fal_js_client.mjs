// fal's own JavaScript client (@fal-ai/client from npm) driven through the proxy's
// /api/fal/proxy, as a Node server app would use it (docs/fal-proxy.md). Run by
// tests/e2e/test_fal_js_client.py; prints one JSON object: what each call returned, and
// every request Node sent and every answer it received, so that the test can check that no
// fal key ever reached the client.
//
// Environment: FAL_JS_DIR (where npm installed the client), PROXY_URL, PROXY_API_KEY.

import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.FAL_JS_DIR, "package.json"));
const { fal, ApiError, ValidationError } = require("@fal-ai/client");

const sent = []; // {method, url, headers}
const received = []; // {url, status, headers, body}
const reading = [];

// The client's fetch, recording both directions (the body through a clone, read in full
// alongside the client's own reading, SSE included).
async function recordingFetch(input, init = {}) {
  const url = String(input);
  const headers = Object.fromEntries(new Headers(init.headers ?? {}));
  if (headers.authorization === `Bearer ${process.env.PROXY_API_KEY}`) {
    headers.authorization = "Bearer <PROXY_API_KEY>"; // the client's own key: not a leak
  }
  sent.push({ method: init.method ?? "GET", url, headers });
  const response = await fetch(input, init);
  const copy = response.clone();
  reading.push(
    copy.text().then((body) => {
      received.push({ url, status: copy.status, headers: Object.fromEntries(copy.headers), body });
    }),
  );
  return response;
}

fal.config({
  proxyUrl: { url: `${process.env.PROXY_URL}/api/fal/proxy`, when: "always" },
  // The proxy's own key, added to every request the client sends (fal-js middleware.ts);
  // the client itself has no fal credentials at all.
  requestMiddleware: async (request) => ({
    ...request,
    headers: { ...(request.headers ?? {}), Authorization: `Bearer ${process.env.PROXY_API_KEY}` },
  }),
  credentials: undefined,
  fetch: recordingFetch,
});

const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC",
  "base64",
);

function describeError(error) {
  return {
    name: error?.name,
    isApiError: error instanceof ApiError,
    isValidationError: error instanceof ValidationError,
    status: error?.status,
    message: error?.message,
    body: error?.body,
    fieldErrors: error instanceof ValidationError ? error.fieldErrors : undefined,
  };
}

async function attempt(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (error) {
    return { ok: false, error: describeError(error) };
  }
}

const out = {};

// 1. fal.subscribe on an image app: queue submit, status polls (with logs), result.
const updates = [];
out.subscribe = await attempt(() =>
  fal.subscribe("fal-ai/flux/schnell", {
    input: { prompt: 'a red fox [[sim {"queue_ms": 300, "latency_ms": 300}]]', num_images: 2 },
    logs: true,
    pollInterval: 100,
    onQueueUpdate: (update) => updates.push(update.status),
  }),
);
out.subscribeUpdates = updates;

// 2. The same through the status stream (SSE from queue.fal.run through the proxy).
const streamedUpdates = [];
out.subscribeStreaming = await attempt(() =>
  fal.subscribe("fal-ai/flux/dev", {
    input: { prompt: 'a blue heron [[sim {"latency_ms": 200}]]' },
    mode: "streaming",
    onQueueUpdate: (update) => streamedUpdates.push(update.status),
  }),
);
out.subscribeStreamingUpdates = streamedUpdates;

// 3. fal.queue: submit (with a priority header), status, result; and cancel.
out.queue = await attempt(async () => {
  const submitted = await fal.queue.submit("fal-ai/flux/dev", {
    input: { prompt: "a lighthouse at dusk" },
    priority: "low",
  });
  const statuses = [];
  let status;
  for (let i = 0; i < 100; i++) {
    status = await fal.queue.status("fal-ai/flux/dev", { requestId: submitted.request_id, logs: true });
    statuses.push(status.status);
    if (status.status === "COMPLETED") break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const result = await fal.queue.result("fal-ai/flux/dev", { requestId: submitted.request_id });
  return { submitted, statuses, result };
});
out.cancel = await attempt(async () => {
  const submitted = await fal.queue.submit("fal-ai/flux/dev", {
    input: { prompt: 'never done [[sim {"hang": true}]]' },
  });
  await fal.queue.cancel("fal-ai/flux/dev", { requestId: submitted.request_id });
  return submitted.request_id;
});

// 4. fal.stream: /stream on fal.run, server-sent events through the proxy.
out.stream = await attempt(async () => {
  const stream = await fal.stream("fal-ai/any-llm", {
    input: { prompt: "Say hello", model: "google/gemini-2.5-flash" },
  });
  const events = [];
  for await (const event of stream) events.push(event);
  return { events, done: await stream.done(), requestId: stream.requestId };
});

// 5. fal.storage.upload of a file (initiate through the proxy, PUT straight to the signed
// URL), then the file's URL read back; and a Blob in an input, uploaded by the client itself.
out.upload = await attempt(async () => {
  const url = await fal.storage.upload(new Blob([PNG], { type: "image/png" }));
  const back = Buffer.from(await (await fetch(url)).arrayBuffer());
  return { url, sameBytes: Buffer.compare(back, PNG) === 0 };
});
out.edit = await attempt(() =>
  fal.subscribe("fal-ai/flux-pro/kontext", {
    input: { prompt: "make it blue", image_url: new Blob([PNG], { type: "image/png" }) },
    pollInterval: 50,
  }),
);

// 6. Errors, as fal's client reports them: the app's own 422 (unchanged from fal), and the
// proxy's refusals in fal's shape.
out.invalidInput = await attempt(() =>
  fal.subscribe("fal-ai/flux/dev", { input: { prompt: "a cat", image_size: "enormous" } }),
);
out.notAllowed = await attempt(() =>
  fal.subscribe("fal-ai/whisper", { input: { audio_url: "https://example.com/a.wav" } }),
);

await Promise.all(reading);
out.sent = sent;
out.received = received;
process.stdout.write(JSON.stringify(out));

// Calls to this proxy: the admin API and the OpenAI endpoints, with the console's session.
// URLs are relative to the page (/console), so the console also works under a path prefix.

export const session = {
  csrf: null, // the session's CSRF token, sent as X-CSRF-Token with every call
  adminKeySet: false,
  signedIn: false,
  expiresAt: null,
  mode: "pool",
  onExpired: () => {}, // set by main.js: back to the sign-in form
};

export class ApiError extends Error {
  constructor(status, message, code, param) {
    super(message);
    this.status = status;
    this.code = code || null;
    this.param = param || null;
  }
}

/** Headers of a call made with the console's session (or with `apiKey` instead). */
export function authHeaders(apiKey) {
  if (apiKey) return { Authorization: `Bearer ${apiKey}` };
  return session.csrf ? { "X-CSRF-Token": session.csrf } : {};
}

/** The error an answer carries, in OpenAI's shape (or fal's, or plain text). */
export async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  let code = null;
  let param = null;
  try {
    const body = await response.json();
    const error = body.error || body;
    message = error.message || error.detail || message;
    code = error.code || null;
    param = error.param || null;
  } catch {
    // not JSON: the status line says it
  }
  return new ApiError(response.status, message, code, param);
}

/** fetch() with the session; an ApiError for any answer but 2xx. */
export async function call(path, { method = "GET", json, form, signal, apiKey } = {}) {
  const headers = authHeaders(apiKey);
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser writes the multipart boundary
  }
  const response = await fetch(path, {
    method, headers, body, signal,
    credentials: apiKey ? "omit" : "same-origin",
    cache: "no-store",
  });
  if (!response.ok) {
    const error = await errorOf(response);
    if (!apiKey && response.status === 401 && path.startsWith("admin/")) session.onExpired();
    throw error;
  }
  return response;
}

/** A JSON call to the admin API. */
export async function admin(path, options = {}) {
  const response = await call(`admin/${path}`, options);
  return response.json();
}

/** Query string from an object, leaving out empty values. */
export function query(params) {
  const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return pairs.length ? `?${new URLSearchParams(pairs)}` : "";
}

export async function loadSession() {
  const response = await fetch("console/session", { cache: "no-store" });
  if (!response.ok) throw await errorOf(response);
  setSession(await response.json());
}

export function setSession(state) {
  session.csrf = state.csrf_token;
  session.adminKeySet = state.admin_key_set;
  session.signedIn = state.signed_in;
  session.expiresAt = state.expires_at;
  session.mode = state.mode;
}

export async function signIn(adminKey) {
  const response = await fetch("console/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ admin_key: adminKey }),
    cache: "no-store",
  });
  if (!response.ok) throw await errorOf(response);
  setSession(await response.json());
}

export async function signOut() {
  const response = await fetch("console/session", {
    method: "DELETE", headers: authHeaders(), cache: "no-store",
  });
  if (response.ok) setSession(await response.json());
  else session.signedIn = false;
}

/** The models of GET /admin/models, fetched once per page load. */
let modelsPromise = null;
export function models() {
  if (!modelsPromise) {
    modelsPromise = admin("models").then((body) => body.data).catch((error) => {
      modelsPromise = null;
      throw error;
    });
  }
  return modelsPromise;
}

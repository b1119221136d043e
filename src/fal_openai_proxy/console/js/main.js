// The console's shell: the session, the navigation and which page is shown (#/keys, ...).

import { loadSession, session, signOut } from "./api.js";
import { announce, clear, h } from "./dom.js";
import { renderSignIn } from "./pages/signin.js";
import { renderOverview } from "./pages/overview.js";
import { renderKeys } from "./pages/keys.js";
import { renderUsage } from "./pages/usage.js";
import { renderRequests } from "./pages/requests.js";
import { renderModels } from "./pages/models.js";
import { renderPlayground } from "./pages/playground.js";

const PAGES = {
  overview: { title: "Overview", render: renderOverview },
  keys: { title: "Keys", render: renderKeys },
  usage: { title: "Usage", render: renderUsage },
  requests: { title: "Requests", render: renderRequests },
  models: { title: "Models", render: renderModels },
  playground: { title: "Playground", render: renderPlayground },
};

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const signOutButton = document.getElementById("sign-out");
let cleanup = null; // what the shown page stops when left (timers, streams)

/** "#/keys?x=1" -> {name: "keys", params}. */
function route() {
  const hash = window.location.hash.startsWith("#/") ? window.location.hash.slice(2) : "";
  const [name, search] = hash.split("?");
  return { name: PAGES[name] ? name : "overview", params: new URLSearchParams(search || "") };
}

function leave() {
  if (cleanup) cleanup();
  cleanup = null;
}

async function show() {
  leave();
  if (!session.signedIn) {
    nav.hidden = true;
    signOutButton.hidden = true;
    document.title = "Sign in · fal-openai-proxy console";
    cleanup = renderSignIn(clear(main), { onSignedIn: show });
    return;
  }
  nav.hidden = false;
  signOutButton.hidden = false;
  const { name, params } = route();
  const page = PAGES[name];
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${page.title} · fal-openai-proxy console`;
  const heading = h("h1", { tabindex: "-1" }, page.title);
  const body = h("div", { class: "page" });
  clear(main).append(heading, body);
  cleanup = page.render(body, { params }) || null;
  if (document.activeElement === document.body || nav.contains(document.activeElement)) {
    heading.focus({ preventScroll: true }); // screen readers hear where they are
  }
}

function buildNav() {
  const links = Object.entries(PAGES).map(([name, page]) =>
    h("li", {}, h("a", { href: `#/${name}`, "data-page": name }, page.title)));
  nav.append(h("ul", {}, links));
}

async function start() {
  buildNav();
  session.onExpired = () => {
    if (!session.signedIn) return;
    session.signedIn = false;
    announce("Your session has ended. Sign in again.");
    show();
  };
  signOutButton.addEventListener("click", async () => {
    leave();
    await signOut();
    announce("Signed out.");
    show();
  });
  window.addEventListener("hashchange", () => {
    if (window.location.hash.startsWith("#/") || window.location.hash === "") show();
  });
  try {
    await loadSession();
  } catch (error) {
    clear(main).append(h("p", { role: "alert" }, `The console cannot reach the proxy: ${error.message}`));
    return;
  }
  show();
}

start();

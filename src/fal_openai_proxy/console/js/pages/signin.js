// Sign in with ADMIN_KEY (posted once; the proxy answers with a session cookie), or, without
// ADMIN_KEY set, how to set it.

import { session, signIn } from "../api.js";
import { announce, field, h } from "../dom.js";

const GENERATE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'";

function howToSetIt() {
  return h("section", { class: "card", "aria-labelledby": "setup-title" },
    h("h2", { id: "setup-title" }, "Set ADMIN_KEY to use the console"),
    h("p", {}, "The console and the admin API are off until the server has an admin key. "
      + "Make a long random secret, give it to the server as ADMIN_KEY (in its environment or "
      + "its .env file), then restart it:"),
    h("pre", {}, h("code", {}, `echo "ADMIN_KEY=$(${GENERATE})" >> .env`)),
    h("p", {}, "Then reload this page and sign in with that key. Keep it secret: it controls "
      + "every key and budget of this proxy."));
}

export function renderSignIn(container, { onSignedIn }) {
  const title = h("h1", { tabindex: "-1" }, "Sign in");
  container.append(title);
  if (!session.adminKeySet) {
    container.append(howToSetIt());
    return null;
  }
  const input = h("input", {
    type: "password", name: "admin_key", autocomplete: "current-password", required: true,
    spellcheck: "false", autocapitalize: "off",
  });
  const message = h("p", { class: "error", role: "alert", hidden: true });
  const button = h("button", { type: "submit" }, "Sign in");
  // For password managers (and Chrome's advice): whose password this is.
  const user = h("input", { type: "text", name: "username", autocomplete: "username", value: "admin", hidden: true });
  const form = h("form", { class: "card narrow", novalidate: true }, user,
    h("p", {}, "Sign in with the server's admin key (ADMIN_KEY). It is sent once; the proxy "
      + "answers with a session that ends when you sign out or after a while."),
    field("Admin key", input),
    message,
    h("div", { class: "actions" }, button));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.hidden = true;
    if (!input.value) {
      message.textContent = "Enter the admin key.";
      message.hidden = false;
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      await signIn(input.value);
      input.value = "";
      announce("Signed in.");
      onSignedIn();
    } catch (error) {
      message.textContent = error.status === 401
        ? "Wrong admin key: this is not the server's ADMIN_KEY."
        : error.message;
      message.hidden = false;
      input.select();
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  container.append(form);
  input.focus();
  return null;
}

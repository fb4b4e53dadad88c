/* The account page (one's tokens and password) and the users page (admins). */
(function () {
  "use strict";

  const {
    api, can, closeDialog, el, format, formErrors, notify, openDialog, replaceKeepingFocus, whileBusy,
  } = window.App;
  const byId = (id) => document.getElementById(id);

  function fieldsOf(form) {
    return Object.fromEntries(new FormData(form).entries());
  }

  /* Submit a form's fields to the API, showing field errors beside the fields. */
  function onSubmit(form, send) {
    const errors = formErrors(form);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      errors.clear();
      const button = form.querySelector("button[type=submit]");
      try {
        await whileBusy({ button, text: "Saving…" }, () => send(fieldsOf(form)));
      } catch (error) {
        errors.show(error);
      }
    });
  }

  function showSecret(box, valueId, secret) {
    byId(valueId).textContent = secret;
    box.hidden = false;
    box.focus();
  }

  /* ---- the account page ---------------------------------------------------------------- */

  /* The listed tokens made with `token`, and with those, and so on: revoked with it. */
  function madeWith(token, tokens) {
    const found = [];
    let parents = new Set([token.id]);
    while (parents.size) {
      const children = tokens.filter((other) => parents.has(other.made_by_token));
      found.push(...children);
      parents = new Set(children.map((child) => child.id));
    }
    return found;
  }

  /* The new token's secret, if it is one of those just revoked: no use to copy any more. */
  function hideRevokedSecret(revoked) {
    const secret = byId("new-token-value").textContent;
    if (!secret || !revoked.some((token) => secret.startsWith(token.prefix))) return;
    byId("new-token-value").textContent = "";
    byId("new-token").hidden = true;
  }

  function tokenRow(token, tokens) {
    const revoke = el("button", { type: "button", className: "btn btn-sm btn-danger-outline" }, "Revoke");
    revoke.addEventListener("click", async () => {
      const children = madeWith(token, tokens);
      const also = children.length === 1 ? ` "${children[0].name}", made with it, is revoked too.`
        : children.length ? ` The ${children.length} tokens made with it are revoked too.` : "";
      if (!window.confirm(`Revoke the token "${token.name}"? Scripts using it stop working at once.${also}`)) return;
      try {
        await api("DELETE", `/api/tokens/${token.id}`);
        hideRevokedSecret([token, ...children]);
        notify(children.length ? `Token "${token.name}" revoked, with ${children.length} made with it.` : `Token "${token.name}" revoked.`);
        const at = [...byId("tokens-body").rows].indexOf(revoke.closest("tr"));
        await loadTokens();
        // The button just used is gone: the keyboard stays in the list, on the row that took
        // its place (else the one above), or goes to the form when no token is left.
        const buttons = byId("tokens-body").querySelectorAll("button");
        (buttons[Math.min(at, buttons.length - 1)] || byId("token-name")).focus();
      } catch (error) {
        notify(error.message, "error");
      }
    });
    const cell = (label, ...content) => el("td", { dataset: { label } }, ...content);
    // a name or an address without spaces wraps in its cell (app.css)
    const long = (label, text) => el("td", { className: "break", dataset: { label } }, text);
    // made with another token: revoking that one revokes this one (the confirmation says so);
    // one node with the name, as a stacked row (a phone's) lays a cell's nodes side by side
    const parent = tokens.find((other) => other.id === token.made_by_token);
    const name = parent
      ? el("span", {}, token.name, el("span", { className: "muted small" }, ` (made with "${parent.name}")`))
      : token.name;
    return el(
      "tr",
      {},
      long("Name", name),
      can("admin") ? cell("Owner", token.owner) : null, // admins see everyone's tokens
      cell("Starts with", el("code", {}, `${token.prefix}…`)),
      // an owner demoted since caps the token: say the role it was made with too
      cell("Role", token.made_as && token.made_as !== token.role ? `${token.role} (made as ${token.made_as})` : token.role),
      cell("Expires", token.expires_at ? format.dateTime(token.expires_at) : "never"),
      cell("Last used", token.last_used_at ? format.dateTime(token.last_used_at) : "never"),
      el("td", { className: "actions" }, revoke),
    );
  }

  async function loadTokens() {
    const body = byId("tokens-body");
    const { items } = await api("GET", "/api/tokens");
    body.replaceChildren(
      ...(items.length ? items.map((token) => tokenRow(token, items)) : [el("tr", {}, el("td", { colSpan: 7, className: "empty-cell" }, "No tokens yet."))]),
    );
  }

  function accountPage() {
    onSubmit(byId("token-form"), async (fields) => {
      const days = fields.expires_days ? Number(fields.expires_days) : null;
      const created = await api("POST", "/api/tokens", { name: fields.name, role: fields.role, expires_days: days });
      showSecret(byId("new-token"), "new-token-value", created.token);
      byId("token-form").reset();
      loadTokens();
    });
    onSubmit(byId("password-form"), async (fields) => {
      await api("POST", "/api/account/password", fields);
      byId("password-form").reset();
      notify("Password changed. Your other sessions were signed out.");
    });
    loadTokens().catch((error) => notify(error.message, "error"));
  }

  /* ---- the users page ------------------------------------------------------------------ */

  async function change(user, fields, done) {
    try {
      await api("PATCH", `/api/users/${user.id}`, fields);
      notify(done);
    } catch (error) {
      notify(error.message, "error");
    }
    loadUsers();
  }

  function roleSelect(user, roles, me) {
    const select = el("select", {
      "aria-label": `Role of ${user.email}`, disabled: me || !user.active, dataset: { action: "role", id: user.id },
    });
    roles.forEach((role) => select.append(el("option", { value: role, selected: role === user.role }, role)));
    select.addEventListener("change", () => {
      // A closed select takes the next option on one arrow key: ask before anyone's rights change.
      if (!window.confirm(`Change the role of ${user.email} from ${user.role} to ${select.value}?`)) {
        select.value = user.role;
        return;
      }
      change(user, { role: select.value }, `${user.email} is now ${select.value}.`);
    });
    return select;
  }

  function userActions(user, me) {
    const actions = el("td", { className: "actions" });
    if (me) return actions;
    const toggle = el("button", {
      type: "button", className: `btn btn-sm ${user.active ? "btn-danger-outline" : ""}`,
      dataset: { action: "active", id: user.id },
    }, user.active ? "Deactivate" : "Reactivate");
    toggle.addEventListener("click", () => {
      if (user.active && !window.confirm(`Deactivate ${user.email}? Their sessions end and their tokens are revoked at once, for good.`)) return;
      change(user, { active: !user.active }, user.active
        ? `${user.email} deactivated: signed out, tokens revoked.`
        : `${user.email} reactivated: they sign in again and make new tokens.`);
    });
    const reset = el("button", { type: "button", className: "btn btn-sm", dataset: { action: "password", id: user.id } },
      "Reset password");
    reset.addEventListener("click", () => askReset(user));
    actions.append(reset, toggle);
    return actions;
  }

  /* The reset dialog: which account, and whether its tokens go too (unticked each time). */
  function askReset(user) {
    const dialog = byId("reset-dialog");
    dialog.dataset.userId = user.id;
    dialog.dataset.email = user.email;
    byId("reset-email").textContent = user.email;
    byId("reset-revoke-tokens").checked = false;
    openDialog(dialog);
  }

  async function confirmReset(event) {
    const dialog = byId("reset-dialog");
    const { userId, email } = dialog.dataset;
    const body = { revoke_tokens: byId("reset-revoke-tokens").checked };
    let result;
    try {
      result = await whileBusy({ button: event.currentTarget, text: "Resetting…", dialog }, () =>
        api("POST", `/api/users/${userId}/password`, body));
    } catch (error) {
      notify(error.message, "error");
      return;
    }
    const revoked = body.revoke_tokens ? ` Their tokens are revoked (${result.tokens_revoked}).` : "";
    byId("new-password-for").textContent = `New password for ${email} (shown only once; it works until changed):${revoked}`;
    // Shown once the dialog has given the focus back to Reset password: the focus goes on to it.
    dialog.addEventListener("close", () => showSecret(byId("new-password-box"), "new-password-value", result.password), { once: true });
    closeDialog(dialog);
  }

  async function loadUsers() {
    const table = byId("users-table");
    const roles = table.dataset.roles.split(",");
    const { items } = await api("GET", "/api/users");
    // Drawn afresh after each change: the control just used keeps the focus.
    replaceKeepingFocus(byId("users-body"), el("tbody", { id: "users-body" },
      ...items.map((user) => {
        const me = String(user.id) === table.dataset.me;
        const cell = (label, ...content) => el("td", { dataset: { label } }, ...content);
        return el(
          "tr",
          { dataset: { userId: user.id } },
          el("td", { className: "break", dataset: { label: "Email" } }, user.email,
            me ? el("span", { className: "muted small" }, " (you)") : null),
          cell("Role", roleSelect(user, roles, me)),
          cell("Status", el("span", { className: `badge ${user.active ? "badge-success" : "badge-muted"}` }, user.active ? "Active" : "Deactivated")),
          cell("Last sign-in", user.last_sign_in_at ? format.dateTime(user.last_sign_in_at) : "never"),
          userActions(user, me),
        );
      }),
    ));
  }

  function usersPage() {
    onSubmit(byId("user-form"), async (fields) => {
      const created = await api("POST", "/api/users", fields);
      byId("new-password-for").textContent = `Account ${created.email} added (${created.role}). Its password (shown only once; it works until changed):`;
      showSecret(byId("new-password-box"), "new-password-value", created.password);
      byId("user-form").reset();
      loadUsers();
    });
    byId("reset-confirm").addEventListener("click", confirmReset);
    loadUsers().catch((error) => notify(error.message, "error"));
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (byId("tokens-table")) accountPage();
    if (byId("users-table")) usersPage();
  });
})();

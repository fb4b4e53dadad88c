/* The webhooks page: a table filled from GET /api/webhooks with an enabled switch, Test,
   add and edit in a modal form, delete behind a confirmation, and each webhook's recent
   deliveries with their attempt log, a Redeliver button, and Resend failed since… (offered
   too when a webhook with failed deliveries is enabled again). The list catches up with
   changes made elsewhere (another tab, another admin, a 410) every few seconds while the tab
   is shown, and at once when it is shown again; saving a URL that another webhook already
   has asks first, as each event both send would arrive twice. */
(function () {
  "use strict";

  const {
    api, ApiError, can, el, format, formErrors, notify, openDialog, closeDialog, setBusy, whileBusy, withLocalTimes,
  } = window.App;
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 2000;
  // One small GET of every webhook: the list is short, and changes to it are rare.
  const LIST_REFRESH_MS = 5000;
  const MINUTE_MS = 60 * 1000;
  const DAY_MS = 24 * 60 * MINUTE_MS;
  // Counting a webhook's deliveries reads every one kept: 150-250 ms a request for the 4 million
  // a busy webhook keeps in 30 days (docs/benchmarks.md). A refresh counts them once a minute;
  // meanwhile page 1 adds those new on top to the count, and other pages show the last one.
  const COUNT_EVERY_MS = MINUTE_MS;

  const state = { webhooks: [], tests: {}, editing: null, deleting: null, shown: null, deliveriesPage: 1, counted: null };
  let pollTimer = null;
  let listTimer = null;
  const list = { asked: 0, shown: 0, changes: 0, changedAt: 0 }; // the list's requests: loadWebhooks
  let webhookErrors = null; // App.formErrors of the webhook form, once the page has loaded
  let recoverErrors = null; // and of the form that resends failed deliveries

  function button(text, action, id, label, className = "btn btn-sm") {
    const props = { type: "button", className, dataset: { action, id: String(id) } };
    return el("button", { ...props, "aria-label": label }, text);
  }

  /* ---- the list ------------------------------------------------------------------------ */

  /* Load the list and draw it. `quiet` (a refresh of its own): no busy table, no notice when
     it fails (the next round tries again), and an answer that may predate a change this page
     made meanwhile is dropped. An older answer never replaces a newer one. */
  async function loadWebhooks({ quiet = false } = {}) {
    const ticket = ++list.asked;
    const table = $("webhooks-table");
    if (!quiet) table.setAttribute("aria-busy", "true");
    try {
      const { items } = await api("GET", "/api/webhooks");
      const stale = quiet && (list.changes > 0 || ticket <= list.changedAt);
      if (stale || ticket < list.shown) return;
      list.shown = ticket;
      // Nothing changed: the rows stay as they are, and so does what a reader is on.
      if (quiet && JSON.stringify(items) === JSON.stringify(state.webhooks)) return;
      state.webhooks = items;
      renderWebhooks();
    } catch (error) {
      if (!quiet) notify(`Could not load the webhooks: ${error.message}`, "error");
    } finally {
      if (!quiet) table.removeAttribute("aria-busy");
    }
  }

  /* Run a request that changes a webhook: a refresh asked before it has ended is not drawn
     (it could show the webhook as it was, under the answer this page drew). */
  async function changing(work) {
    list.changes += 1;
    try {
      return await work();
    } finally {
      list.changes -= 1;
      list.changedAt = list.asked;
    }
  }

  /* Every few seconds while the tab is shown; none while it is hidden. */
  function scheduleRefresh() {
    clearTimeout(listTimer);
    listTimer = document.hidden ? null : setTimeout(refreshList, LIST_REFRESH_MS);
  }

  async function refreshList() {
    clearTimeout(listTimer);
    if (!document.hidden) await loadWebhooks({ quiet: true });
    scheduleRefresh();
  }

  /* Back to the tab: the changes made meanwhile are shown at once, not a few seconds later. */
  function onVisibilityChange() {
    if (document.hidden) clearTimeout(listTimer);
    else refreshList();
  }

  /* Drawn again (after a save, a test answered 410, a change in another tab): the control
     that had the focus keeps it, so that a keyboard user is not sent back to the top. */
  function renderWebhooks() {
    refill($("webhooks-body"), state.webhooks.map(webhookRow), $("new-webhook-button"));
    $("webhooks-empty").hidden = state.webhooks.length > 0;
    const shown = state.shown != null && findWebhook(state.shown);
    if (shown) $("deliveries-url").textContent = shown.url; // its URL may have been edited elsewhere
  }

  /* Fill a table's body anew; the button that had the focus (the same action on the same
     row) keeps it. When its row is gone (deleted elsewhere), `instead` takes it: the focus
     would otherwise fall back to the top of the document. */
  function refill(body, rows, instead = null) {
    const had = body.contains(document.activeElement) ? { ...document.activeElement.dataset } : {};
    body.replaceChildren(...rows);
    if (!had.action) return;
    const again = rowControl(had.action, had.id, body);
    if (again) again.focus({ preventScroll: true });
    else if (instead) instead.focus();
  }

  /* A row's button or switch for `action` on webhook `id`, as the table has it now. */
  function rowControl(action, id, body = $("webhooks-body")) {
    return body.querySelector(`[data-action="${action}"][data-id="${id}"]`);
  }

  /* Run a row's request with its button busy (disabled, so the browser takes the focus away
     from it); the focus comes back to the button when it had it. */
  async function busyButton(button, text, work) {
    const focused = document.activeElement === button;
    try {
      return await whileBusy({ button, text }, work);
    } finally {
      if (focused && button.isConnected) button.focus({ preventScroll: true });
    }
  }

  /* A webhook deleted meanwhile (in another tab, or by another admin): say so in words
     ("Webhook 12 does not exist" helps no one) and show the list as it is now. `hook` may
     know only its id: a poll that heard of it first has reloaded the list already. */
  async function deletedMeanwhile(hook) {
    const which = hook.url ? `The webhook to ${hook.url}` : "This webhook";
    notify(`${which} was deleted meanwhile, in another tab or by another admin.`, "info");
    if (state.shown === hook.id) hideDeliveries();
    delete state.tests[hook.id];
    await loadWebhooks();
    if (can("admin")) $("new-webhook-button").focus();
  }

  function webhookRow(hook) {
    // one block beside the cell's label on a narrow screen, the URL above the notes
    const about = el("div", {}, el("span", { className: "sku" }, hook.url));
    if (hook.description) about.append(el("div", { className: "muted small break" }, hook.description));
    if (hook.disabled_reason) about.append(el("div", { className: "field-error" }, ...withLocalTimes(hook.disabled_reason)));
    if (hook.previous_secret_expires_at) about.append(el("div", { className: "muted small" }, previousSecretLine(hook)));
    // Below admin, URLs come without their credentials: two that differ in those alone match.
    if (can("admin") && othersAt(hook.url, hook.id).length) about.append(el("div", { className: "small warning-text" }, SHARED_LINE));
    const url = el("td", { dataset: { label: "URL" } }, about);
    return el(
      "tr",
      { dataset: { id: String(hook.id) } },
      url,
      el("td", { dataset: { label: "Events" } }, eventList(hook.events)),
      el("td", { dataset: { label: "Enabled" } }, enabledSwitch(hook)),
      el("td", { dataset: { label: "Last test" } }, testResult(hook)),
      el("td", { className: "actions" }, ...rowActions(hook)),
    );
  }

  /* Everyone sees the deliveries; only admins manage webhooks. */
  function rowActions(hook) {
    const deliveries = button("Deliveries", "deliveries", hook.id, `Deliveries of ${hook.url}`);
    if (!can("admin")) return [deliveries];
    return [
      button("Test", "test", hook.id, `Test ${hook.url}`),
      deliveries,
      button("Edit", "edit", hook.id, `Edit ${hook.url}`),
      button("Delete", "delete", hook.id, `Delete ${hook.url}`, "btn btn-sm btn-danger-outline"),
    ];
  }

  function previousSecretLine(hook) {
    return `The old secret also signs until ${format.dateTime(hook.previous_secret_expires_at)}.`;
  }

  function eventList(events) {
    return el("span", { className: "small" }, events.join(", "));
  }

  function enabledSwitch(hook) {
    const input = el("input", {
      type: "checkbox",
      role: "switch",
      checked: hook.enabled,
      disabled: !can("admin"),
      dataset: { action: "toggle", id: String(hook.id) },
      "aria-label": `Enabled: ${hook.url}`,
    });
    return el("label", { className: "switch" }, input, el("span", { className: "switch-track", "aria-hidden": "true" }));
  }

  /* The test this page is sending or could not send (state.tests), else the webhook's last
     test as the server keeps it: the same after a reload, and tests sent from elsewhere too. */
  function testResult(hook) {
    const result = state.tests[hook.id] || hook.last_test;
    const cell = el("span", { className: "small test-result", role: "status", id: `test-result-${hook.id}` });
    if (!result) cell.append(el("span", { className: "muted" }, "–"));
    else if (result.pending) cell.append(el("span", { className: "muted" }, "Sending ping…"));
    else cell.append(resultLine(result));
    return cell;
  }

  /* "200 · 34 ms" on one line, when it was sent below it, then the error (if any). */
  function resultLine(result) {
    const time = result.response_time_ms == null ? "" : ` ${format.number(result.response_time_ms)} ms`;
    const line = el("span", { className: "nowrap" }, responseBadge(result), el("span", { className: "muted" }, time));
    if (!result.error && !result.at) return line;
    const when = result.at ? el("div", { className: "muted nowrap" }, format.dateTime(result.at)) : null;
    const error = result.error ? el("div", { className: "muted long-error" }, result.error) : null;
    return el("span", {}, line, when, error);
  }

  function responseBadge(result) {
    const ok = result.ok === undefined ? result.status === "succeeded" : result.ok;
    const label = result.status_code ? String(result.status_code) : ok ? "OK" : "Error";
    return el("span", { className: `badge ${ok ? "badge-success" : "badge-danger"}` }, label);
  }

  function responseText(result) {
    const parts = [];
    if (result.response_time_ms != null) parts.push(`${format.number(result.response_time_ms)} ms`);
    if (result.error) parts.push(result.error);
    return parts.join(" · ");
  }

  function findWebhook(id) {
    return state.webhooks.find((hook) => hook.id === Number(id));
  }

  /* ---- actions on a row ---------------------------------------------------------------- */

  /* The row's Last test as it is now (the row may be gone: deleted elsewhere). */
  function showTestResult(id) {
    const cell = $(`test-result-${id}`);
    const hook = findWebhook(id);
    if (cell && hook) cell.replaceWith(testResult(hook));
  }

  /* Sent, the test is recorded with the webhook (its last_test, which the list's next refresh
     brings too); a test that failed to be sent at all is this page's to show. */
  async function runTest(id, trigger) {
    state.tests[id] = { pending: true };
    showTestResult(id);
    let result;
    try {
      const ping = () => changing(() => api("POST", `/api/webhooks/${id}/test`)); // a 410 disables it
      result = await busyButton(trigger, "Testing…", ping);
      delete state.tests[id];
      const hook = findWebhook(id);
      if (hook) hook.last_test = { ...result, at: new Date().toISOString() };
    } catch (error) {
      if (error.status === 404) return deletedMeanwhile(findWebhook(id) || { id });
      state.tests[id] = { ok: false, error: error.message };
    }
    showTestResult(id);
    if (state.shown === id) loadDeliveries();
    // A 410 disabled the webhook: its switch and the reason are shown as they are now.
    if (result && result.status_code === 410) await loadWebhooks();
  }

  async function toggle(input) {
    const hook = findWebhook(input.dataset.id);
    input.disabled = true;
    try {
      const changed = await changing(() => api("PATCH", `/api/webhooks/${hook.id}`, { enabled: input.checked }));
      Object.assign(findWebhook(hook.id) || hook, changed); // the list may have been loaded anew meanwhile
      notify(`Webhook ${changed.enabled ? "enabled" : "disabled"}.`, "success");
      if (changed.enabled) offerRecovery(hook);
    } catch (error) {
      if (error.status === 404) return deletedMeanwhile(hook);
      notify(`Could not change the webhook: ${error.message}`, "error");
    } finally {
      input.disabled = false;
    }
    renderWebhooks(); // the switch as the webhook now is (unchanged when refused)
    const again = rowControl("toggle", hook.id);
    if (again) again.focus();
  }

  function onTableClick(event) {
    const target = event.target.closest("[data-action]");
    if (!target || target.dataset.action === "toggle") return;
    const id = Number(target.dataset.id);
    const actions = {
      test: () => runTest(id, target),
      deliveries: () => showDeliveries(id),
      edit: () => editWebhook(findWebhook(id)),
      delete: () => confirmDelete(findWebhook(id)),
    };
    actions[target.dataset.action]();
  }

  function onTableChange(event) {
    if (event.target.dataset.action === "toggle") toggle(event.target);
  }

  /* ---- add and edit -------------------------------------------------------------------- */

  let opening = false;

  /* Edit the webhook as it is now (a 410 may have disabled it, another tab changed it), not
     as the list showed it when it loaded. */
  async function editWebhook(hook) {
    if (opening) return;
    opening = true;
    let read;
    try {
      read = await api("GET", `/api/webhooks/${hook.id}`);
    } catch (error) {
      if (error.status === 404) return deletedMeanwhile(hook);
      return notify(`Could not open the webhook: ${error.message}`, "error");
    } finally {
      opening = false;
    }
    Object.assign(hook, read);
    renderWebhooks();
    // Closing the form gives the focus back to this Edit, also when it was opened from
    // another webhook's form (Edit that webhook instead).
    const edit = rowControl("edit", hook.id);
    if (edit) edit.focus({ preventScroll: true });
    openForm(hook);
  }

  function openForm(hook) {
    state.editing = hook || null;
    const form = $("webhook-form");
    form.reset();
    webhookErrors.clear();
    $("webhook-dialog-title").textContent = hook ? "Edit webhook" : "Add webhook";
    forgetSharedUrl();
    if (hook) {
      form.elements.url.value = hook.url;
      form.elements.description.value = hook.description;
      form.elements.enabled.checked = hook.enabled;
      eventBoxes().forEach((box) => (box.checked = hook.events.includes(box.value)));
    }
    $("rotate-secret").hidden = !hook;
    if (hook) showSecretState(hook);
    openDialog($("webhook-dialog"));
  }

  function eventBoxes() {
    return [...$("webhook-form").querySelectorAll('input[name="events"]')];
  }

  function formValues() {
    const form = $("webhook-form");
    return {
      url: form.elements.url.value.trim(),
      description: form.elements.description.value.trim(),
      events: eventBoxes().filter((box) => box.checked).map((box) => box.value),
      enabled: form.elements.enabled.checked,
    };
  }

  /* For an edit, only what the person changed: the rest may have changed meanwhile (a 410
     disabled it, another tab changed its events), and sending it back would undo that. */
  function changes(values) {
    const hook = state.editing;
    if (!hook) return values;
    const same = (name) => JSON.stringify(values[name]) === JSON.stringify(hook[name]);
    return Object.fromEntries(Object.keys(values).filter((name) => !same(name)).map((name) => [name, values[name]]));
  }

  async function submitForm(event) {
    event.preventDefault();
    webhookErrors.clear();
    const dialog = $("webhook-dialog");
    const editing = state.editing;
    const values = changes(formValues());
    if (editing && !Object.keys(values).length) {
      closeDialog(dialog);
      return notify("Nothing changed.", "info");
    }
    const save = () =>
      changing(() => (editing ? api("PATCH", `/api/webhooks/${editing.id}`, values) : api("POST", "/api/webhooks", values)));
    let saved;
    try {
      saved = await whileBusy({ button: $("webhook-save"), text: "Saving…", dialog }, async () => {
        const others = await sharingUrl(values);
        return others.length ? { others } : save();
      });
    } catch (error) {
      if (error.status === 404 && editing) return deletedWhileEditing();
      return webhookErrors.show(error);
    }
    if (saved.others) return warnSharedUrl(formValues(), saved.others);
    closeDialog(dialog);
    await loadWebhooks();
    if (!editing) return showSecret(saved.secret);
    notify("Webhook saved.", "success");
    if (values.enabled === true) offerRecovery(saved); // enabled again here, as by its switch
  }

  /* What was typed is not lost: the form becomes a new webhook's, which can add it again. */
  function deletedWhileEditing() {
    const { url } = state.editing;
    state.editing = null;
    $("webhook-dialog-title").textContent = "Add webhook";
    $("webhook-save").textContent = "Add webhook";
    $("rotate-secret").hidden = true;
    const message =
      `The webhook to ${url} was deleted while you were editing it, in another tab or by another admin. ` +
      "Add webhook adds it again with these values and a new signing secret; Cancel leaves it deleted.";
    webhookErrors.show(new ApiError(404, message, "not_found"));
    loadWebhooks();
  }

  /* ---- a URL that another webhook already has ------------------------------------------ */

  // Beside each of two webhooks with one URL (made through the API, or saved anyway).
  const SHARED_LINE = "Same URL as another webhook: an event both send arrives twice.";

  /* A URL as the browser reads it (host in lower case, no default port), to compare two. */
  function urlKey(url) {
    try {
      return new URL(url).href;
    } catch (notAUrl) {
      return String(url).trim();
    }
  }

  /* The webhooks other than `id` that send to this URL. */
  function othersAt(url, id, webhooks = state.webhooks) {
    const key = urlKey(url);
    return webhooks.filter((hook) => hook.id !== id && urlKey(hook.url) === key);
  }

  /* The other webhooks with the URL about to be saved, in the list as it is now (another tab
     may have added one); none when the URL is not changed, or the person was told and saves
     anyway. */
  async function sharingUrl(values) {
    if (!("url" in values) || urlKey(values.url) === state.sharedUrl) return [];
    // Asked here, not through the list's refresh, which drops an answer while another change
    // of this page (a Test, say) is under way; when it fails, the list as it is drawn.
    let webhooks = state.webhooks;
    try {
      ({ items: webhooks } = await api("GET", "/api/webhooks"));
    } catch {
      // the list as drawn is the best there is; the save itself says what went wrong
    }
    return othersAt(values.url, state.editing ? state.editing.id : null, webhooks);
  }

  /* Said in the form, as other second thoughts are: the save waits for Add anyway (or Save
     anyway); Edit that webhook instead opens the other one. */
  function warnSharedUrl(values, others) {
    state.sharedUrl = urlKey(values.url);
    state.sharedWith = others[0];
    $("webhook-url-shared-text").textContent = sharedUrlWords(values, others);
    $("webhook-url-shared").hidden = false;
    $("webhook-save").textContent = state.editing ? "Save anyway" : "Add anyway";
    $("webhook-url").focus();
  }

  /* "https://… is already the URL of another webhook, “CRM sync”: each product.created event
     would be sent to it twice. Add anyway to keep both, or edit that webhook instead." */
  function sharedUrlWords(values, others) {
    const one = others.length === 1;
    const [first] = others;
    const whose = one
      ? `another webhook, ${first.description ? `“${first.description}”` : `added ${format.dateTime(first.created_at)}`}`
      : `${others.length} other webhooks`;
    const that = one ? "that webhook" : "one of them";
    const theirs = new Set(others.flatMap((hook) => hook.events));
    const both = values.events.filter((name) => theirs.has(name));
    const choice = `${state.editing ? "Save" : "Add"} anyway to keep ${one ? "both" : "them all"}, or edit ${that} instead.`;
    if (!both.length) {
      const sends = `${one ? "It sends" : "They send"} ${listed([...theirs])} there; this one would send other events, signed with another secret.`;
      return `${values.url} is already the URL of ${whose}. ${sends} ${choice}`;
    }
    const when = others.some((hook) => hook.enabled) ? "" : ` once ${that} is enabled again`;
    const twice = `each ${listed(both)} event would be sent to it ${one ? "twice" : "more than once"}${when}`;
    return `${values.url} is already the URL of ${whose}: ${twice}. ${choice}`;
  }

  /* "a", "a and b", "a, b and c" */
  function listed(names) {
    return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
  }

  /* A new form, or a URL changed after the warning: it is asked about again. */
  function forgetSharedUrl() {
    state.sharedUrl = null;
    state.sharedWith = null;
    $("webhook-url-shared").hidden = true;
    $("webhook-save").textContent = state.editing ? "Save changes" : "Add webhook";
  }

  /* Leave this form for the other webhook's: what it sends may be what is wanted there. */
  function editSharedInstead() {
    const other = state.sharedWith;
    closeDialog($("webhook-dialog"));
    editWebhook(findWebhook(other.id) || other);
  }

  function showSecret(secret, { title = "Webhook added", previous = "" } = {}) {
    $("secret-dialog-title").textContent = title;
    $("secret-dialog-previous").textContent = previous;
    $("secret-dialog-previous").hidden = !previous;
    $("webhook-secret").value = secret;
    openDialog($("secret-dialog"));
  }

  /* ---- rotating the secret (in the edit dialog) ----------------------------------------- */

  function showSecretState(hook) {
    $("rotate-secret-state").textContent = hook.previous_secret_expires_at
      ? previousSecretLine(hook)
      : "Only the current secret signs requests.";
  }

  async function rotateSecret() {
    const hook = state.editing;
    const body = $("rotate-secret-now").checked ? { keep_previous_hours: 0 } : {};
    let rotated;
    try {
      rotated = await whileBusy({ button: $("rotate-secret-button"), text: "Rotating…", dialog: $("webhook-dialog") }, () =>
        changing(() => api("POST", `/api/webhooks/${hook.id}/rotate-secret`, body)),
      );
    } catch (error) {
      if (error.status === 404) return deletedWhileEditing();
      return notify(`Could not rotate the secret: ${error.message}`, "error");
    }
    // The list's copy too: it may have been loaded anew while the form was open.
    [hook, findWebhook(hook.id)].filter(Boolean).forEach((copy) => {
      Object.assign(copy, rotated);
      delete copy.secret;
    });
    $("rotate-secret-now").checked = false;
    showSecretState(hook);
    renderWebhooks();
    const previous = rotated.previous_secret_expires_at
      ? previousSecretLine(rotated)
      : "The old secret no longer signs anything.";
    // Busy, the button lost the focus; given it back, closing the secret returns to it, in
    // the Edit dialog still open beneath, not to the top of the page.
    $("rotate-secret-button").focus();
    showSecret(rotated.secret, { title: "New signing secret", previous });
  }

  async function copySecret() {
    const input = $("webhook-secret");
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
      notify("Secret copied.", "success");
    } catch (error) {
      notify("Select the secret and copy it with Ctrl+C (the browser refused to copy).", "info");
    }
  }

  /* ---- delete -------------------------------------------------------------------------- */

  function confirmDelete(hook) {
    state.deleting = hook;
    $("delete-url").textContent = hook.url;
    openDialog($("delete-dialog"));
  }

  async function deleteConfirmed() {
    const dialog = $("delete-dialog");
    const hook = state.deleting;
    try {
      await whileBusy({ button: $("delete-confirm"), text: "Deleting…", dialog }, () =>
        changing(() => api("DELETE", `/api/webhooks/${hook.id}`)),
      );
    } catch (error) {
      if (error.status !== 404) return notify(`Could not delete the webhook: ${error.message}`, "error");
      closeDialog(dialog);
      return deletedMeanwhile(hook);
    }
    closeDialog(dialog);
    if (state.shown === hook.id) hideDeliveries();
    notify("Webhook deleted.", "success");
    await loadWebhooks();
    $("new-webhook-button").focus();
  }

  /* ---- deliveries ---------------------------------------------------------------------- */

  function showDeliveries(id) {
    state.shown = id;
    $("deliveries").hidden = false;
    $("deliveries-url").textContent = findWebhook(id).url;
    $("deliveries-body").replaceChildren();
    $("deliveries-pager").hidden = true;
    state.deliveriesSeen = null;
    state.deliveryItems = null;
    state.deliveriesPage = 1;
    $("deliveries-status").textContent = "Loading deliveries…";
    loadDeliveries().then(() => $("deliveries-title").scrollIntoView({ block: "nearest" }));
  }

  function hideDeliveries() {
    state.shown = null;
    $("deliveries").hidden = true;
    clearTimeout(pollTimer);
  }

  /* Close the list with its button: the focus goes back to the button that opened it. */
  function closeDeliveries() {
    const id = state.shown;
    hideDeliveries();
    const opener = rowControl("deliveries", id);
    if (opener) opener.focus();
  }

  /* Refresh, asked: busy while it asks, then says so (the list alone changes only when
     something came, and a click that showed nothing looked like a dead button); not when the
     webhook was deleted meanwhile (that is said) or the deliveries could not be loaded. */
  async function refreshDeliveries(event) {
    const id = state.shown;
    await busyButton(event.currentTarget, "Refreshing…", () => loadDeliveries());
    if (state.shown === id && !$("deliveries-status").textContent.startsWith("Could not")) {
      notify("The deliveries are up to date.", "info");
    }
  }

  /* `poll`: a refresh of the page as it is, which counts the deliveries only once a minute. */
  async function loadDeliveries({ poll = false } = {}) {
    clearTimeout(pollTimer);
    const id = state.shown;
    if (id == null) return;
    try {
      const page = state.deliveriesPage;
      const carry = poll && countedLately(id);
      const asked = await api("GET", `/api/webhooks/${id}/deliveries?page=${page}${carry ? "&total=false" : ""}`);
      if (state.shown !== id || state.deliveriesPage !== page) return; // another page was asked for
      const found = carry ? carried(asked) : keepCount(id, asked);
      if (!found) return loadDeliveries(); // what came meanwhile cannot be told: counted now
      if (page > found.pages) return turnDeliveries(found.pages - page); // fewer pages now: the last
      state.deliveryItems = found.items;
      // Rendered again only when something changed: an open attempt log stays open.
      const seen = JSON.stringify(found);
      if (seen !== state.deliveriesSeen) {
        state.deliveriesSeen = seen;
        // the attempt logs being read stay open through a new delivery or a retry
        const body = $("deliveries-body");
        const open = new Set([...body.querySelectorAll("details[open]")].map((log) => log.dataset.id));
        refill(body, found.items.map(deliveryRow));
        body.querySelectorAll("details").forEach((log) => (log.open = open.has(log.dataset.id)));
        showDeliveryPager(found);
      }
      $("deliveries-status").textContent = deliveriesSaid(found); // after a failed load too
    } catch (error) {
      if (error.status === 404 && state.shown === id) {
        return deletedMeanwhile(findWebhook(id) || { id, url: $("deliveries-url").textContent });
      }
      $("deliveries-status").textContent = `Could not load the deliveries: ${error.message}`;
    }
    // New deliveries and retries show up while the list is open (not while the tab is hidden).
    if (state.shown === id) pollTimer = setTimeout(pollDeliveries, POLL_MS);
  }

  function countedLately(id) {
    const last = state.counted;
    return Boolean(last && last.id === id && Date.now() - last.at < COUNT_EVERY_MS);
  }

  /* Keep the count of a counted answer, with the deliveries of page 1 it took in. */
  function keepCount(id, found) {
    state.counted = { id, total: found.total, ...pageOne(found), at: Date.now() };
    return found;
  }

  /* The ids on page 1, and the oldest of them: a delivery above that one not among them came
     since, even one with a smaller id than others there (committed after them). */
  function pageOne(found) {
    const ids = found.page === 1 ? found.items.map((item) => item.id) : [];
    return { seen: new Set(ids), oldest: ids.length ? ids[ids.length - 1] : null };
  }

  /* An answer not counted, with the last count carried: on page 1 with the deliveries that
     came since on top; null when that cannot be told (more came than a page shows). */
  function carried(found) {
    const last = state.counted;
    let { total } = found; // read off a page that is not full, which needs no count
    if (total == null && !found.items.length) return null; // past the end: how far?
    if (total == null && found.page === 1) {
      if (last.oldest == null || !found.items.some((item) => last.seen.has(item.id))) return null;
      const came = found.items.filter((item) => item.id > last.oldest && !last.seen.has(item.id));
      total = last.total + came.length;
      state.counted = { ...last, total, ...pageOne(found) };
    }
    total ??= last.total; // other pages: the last count, at most a minute old
    return { ...found, total, pages: Math.max(1, Math.ceil(total / found.per_page)) };
  }

  /* "3 most recent deliveries, newest first." on one page; "Deliveries 51–100 of 230" on many. */
  function deliveriesSaid({ items, page, per_page: perPage, total }) {
    if (!items.length && page === 1) return "No deliveries yet. Press Test to send a ping.";
    if (total <= perPage) {
      return `${items.length === 1 ? "1 most recent delivery" : `${items.length} most recent deliveries`}, newest first.`;
    }
    const first = (page - 1) * perPage + 1;
    const last = first + items.length - 1;
    return `Deliveries ${format.number(first)}–${format.number(last)} of ${format.number(total)}, newest first.`;
  }

  /* Newer and Older, as the import history has them: only those that lead somewhere. */
  function showDeliveryPager({ page, pages }) {
    const newer = $("deliveries-newer");
    const older = $("deliveries-older");
    const pressed = document.activeElement;
    $("deliveries-pager").hidden = pages <= 1;
    $("deliveries-page").textContent = `Page ${format.number(page)} of ${format.number(pages)}`;
    newer.hidden = page <= 1;
    older.hidden = page >= pages;
    // Older pressed onto the last page (Newer onto the first) is gone: the focus goes to the
    // other button rather than being lost to the page.
    if (pressed === older && older.hidden && !newer.hidden) newer.focus();
    if (pressed === newer && newer.hidden && !older.hidden) older.focus();
    // Both gone (the list shrank to one page): to Refresh, beside the list, not to the page.
    if ((pressed === older || pressed === newer) && pages <= 1) $("deliveries-refresh").focus();
  }

  function turnDeliveries(step) {
    state.deliveriesPage = Math.max(1, state.deliveriesPage + step);
    state.deliveriesSeen = null;
    return loadDeliveries();
  }

  function pollDeliveries() {
    if (document.hidden) pollTimer = setTimeout(pollDeliveries, POLL_MS);
    else loadDeliveries({ poll: true });
  }

  function deliveryRow(item) {
    return el(
      "tr",
      {},
      el(
        "td",
        { dataset: { label: "Event" } },
        el("div", { className: "event-cell" }, el("code", {}, item.event), el("div", { className: "muted small sku event-id" }, item.event_id)),
      ),
      el("td", { dataset: { label: "Outcome" } }, outcomeBadge(item), nextAttempt(item)),
      el("td", { dataset: { label: "Response" } }, el("div", { className: "long-error" }, deliveryResponse(item))),
      el("td", { dataset: { label: "Attempts" } }, attemptLog(item)),
      el("td", { dataset: { label: "Created" } }, format.dateTime(item.created_at)),
      el("td", { className: "actions" }, can("admin") ? button("Redeliver", "redeliver", item.id, `Redeliver ${item.event} ${item.event_id}`) : null),
    );
  }

  /* "HTTP 204 · 37 ms" (or why there was no answer) of the delivery's last attempt. */
  function deliveryResponse(item) {
    if (!item.attempts) return "–";
    const code = item.status_code ? `HTTP ${item.status_code}` : "No answer";
    return [code, responseText(item)].filter(Boolean).join(" · ");
  }

  function outcomeBadge(item) {
    const kinds = { succeeded: "badge-success", failed: "badge-danger", pending: "badge-warning" };
    const label = item.status === "pending" && item.attempts ? "retrying" : item.status;
    return el("span", { className: `badge ${kinds[item.status] || "badge-muted"}` }, label);
  }

  function nextAttempt(item) {
    if (!item.next_attempt_at || !item.attempts) return null;
    const at = format.dateTime(item.next_attempt_at, { seconds: true }); // retries come seconds apart
    return el("div", { className: "muted small" }, `next try ${at}`);
  }

  function attemptLog(item) {
    const log = item.attempt_log || [];
    if (!log.length) return String(item.attempts);
    const list = el("ol", { className: "small long-error" });
    log.forEach((attempt) => {
      const code = attempt.status_code ? `HTTP ${attempt.status_code}` : "no answer";
      const at = format.dateTime(attempt.at, { seconds: true });
      list.append(el("li", {}, `${at}: ${code}. ${responseText(attempt)}`));
    });
    // data-action and data-id: drawn anew, the summary keeps the focus (refill)
    const props = { dataset: { action: "log", id: String(item.id) } };
    const summary = el("summary", props, `${item.attempts} attempt${item.attempts === 1 ? "" : "s"}`);
    return el("details", { dataset: { id: String(item.id) } }, summary, list);
  }

  async function redeliver(target) {
    const url = `/api/webhooks/${state.shown}/deliveries/${target.dataset.id}/redeliver`;
    let queued;
    try {
      queued = await busyButton(target, "Queuing…", () => api("POST", url));
    } catch (error) {
      if (error.status === 404) return loadDeliveries(); // the webhook, or this old delivery, is gone
      return notify(`Could not redeliver: ${error.message}`, "error");
    }
    // A finished delivery is sent again as a new one, newest: first on page 1, not on this page.
    const where = state.deliveriesPage > 1 ? ", first on page 1" : ", first in the list";
    const anew = queued && String(queued.id) !== target.dataset.id ? ` as a new delivery${where}` : "";
    notify(`Delivery queued${anew}; it is sent in the background.`, "success");
    await loadDeliveries();
  }


  function onDeliveriesClick(event) {
    const target = event.target.closest('[data-action="redeliver"]');
    if (target) redeliver(target);
  }

  /* ---- resending what failed since a time ---------------------------------------------- */

  /* The events whose latest delivery listed (newest first) failed: what a resend would send. */
  function failedEvents(items) {
    const seen = new Set();
    return (items || []).filter((item) => {
      const latest = !seen.has(item.event_id);
      seen.add(item.event_id);
      return latest && item.status === "failed" && item.event !== "ping";
    });
  }

  /* A datetime-local value for a moment: the browser's time zone, to the minute. */
  function localInputValue(date) {
    return new Date(date.getTime() - date.getTimezoneOffset() * MINUTE_MS).toISOString().slice(0, 16);
  }

  /* As far back as deliveries are kept, less a minute: the input's value is cut to the minute. */
  function earliestSince() {
    return new Date(Date.now() - Number($("recover-since").dataset.days) * DAY_MS + MINUTE_MS);
  }

  /* The oldest failed event of the recent deliveries (newest first), else a day ago. */
  function defaultSince(items) {
    const failed = failedEvents(items);
    const oldest = failed.length ? new Date(failed[failed.length - 1].created_at) : new Date(Date.now() - DAY_MS);
    return new Date(Math.max(oldest.getTime(), earliestSince().getTime()));
  }

  function openRecover(hook, items) {
    state.recovering = hook;
    recoverErrors.clear();
    const input = $("recover-since");
    input.min = localInputValue(earliestSince());
    input.max = localInputValue(new Date());
    input.value = localInputValue(defaultSince(items));
    $("recover-url").textContent = hook.url;
    openDialog($("recover-dialog"), { focus: input });
  }

  async function submitRecover(event) {
    event.preventDefault();
    recoverErrors.clear();
    const dialog = $("recover-dialog");
    const hook = state.recovering;
    const value = $("recover-since").value;
    if (!value) return recoverErrors.show({ message: "Choose a time.", details: { since: "Choose the time to resend from." } });
    let result;
    try {
      result = await whileBusy({ button: $("recover-submit"), text: "Queuing…", dialog }, () =>
        api("POST", `/api/webhooks/${hook.id}/recover`, { since: new Date(value).toISOString() }),
      );
    } catch (error) {
      if (error.status !== 404) return recoverErrors.show(error);
      closeDialog(dialog);
      return deletedMeanwhile(hook);
    }
    closeDialog(dialog);
    if (result.queued) {
      const events = result.queued === 1 ? "1 event" : `${format.number(result.queued)} events`;
      notify(`${events} queued again; they are sent in the background.`, "success");
    } else {
      notify(`Nothing to resend: no event's latest delivery failed since ${format.dateTime(result.since)}.`, "info");
    }
    if (state.shown === hook.id) loadDeliveries();
  }

  /* A webhook enabled again after deliveries failed: offer to resend them, once asked. */
  async function offerRecovery(hook) {
    let items;
    try {
      ({ items } = await api("GET", `/api/webhooks/${hook.id}/deliveries?limit=200`));
    } catch (error) {
      return; // the offer is a convenience: the deliveries list has the button too
    }
    const failed = failedEvents(items).length;
    if (!failed) return;
    const offer = el("button", { type: "button", className: "btn btn-sm" }, "Resend failed since…");
    const text = failed === 1 ? "1 recent event" : `${format.number(failed)} recent events`;
    const said = el("span", {}, `${text} could not be sent to `, el("span", { className: "sku break" }, hook.url), ". ", offer);
    const notice = notify(said, "info", { timeout: 0 });
    offer.addEventListener("click", () => {
      // The offer goes with its notice: closing the dialog gives the focus to the switch that
      // enabled the webhook (the dialog's opener), not to the top of the page.
      (rowControl("toggle", hook.id) || $("new-webhook-button")).focus({ preventScroll: true });
      notice.remove();
      openRecover(hook, items);
    });
  }

  /* ---- wiring -------------------------------------------------------------------------- */

  document.addEventListener("DOMContentLoaded", () => {
    webhookErrors = formErrors($("webhook-form"));
    recoverErrors = formErrors($("recover-form"));
    if (can("admin")) {
      $("new-webhook-button").addEventListener("click", () => openForm(null));
      $("deliveries-recover").addEventListener("click", () => openRecover(findWebhook(state.shown), state.deliveryItems));
      $("recover-form").addEventListener("submit", submitRecover);
    }
    $("webhooks-body").addEventListener("click", onTableClick);
    $("webhooks-body").addEventListener("change", onTableChange);
    $("webhook-form").addEventListener("submit", submitForm);
    $("webhook-url").addEventListener("input", () => state.sharedUrl && forgetSharedUrl());
    $("webhook-url-shared-edit").addEventListener("click", editSharedInstead);
    document.addEventListener("visibilitychange", onVisibilityChange);
    $("secret-copy").addEventListener("click", copySecret);
    $("rotate-secret-button").addEventListener("click", rotateSecret);
    $("delete-confirm").addEventListener("click", deleteConfirmed);
    $("deliveries-body").addEventListener("click", onDeliveriesClick);
    $("deliveries-refresh").addEventListener("click", refreshDeliveries);
    $("deliveries-newer").addEventListener("click", () => turnDeliveries(-1));
    $("deliveries-older").addEventListener("click", () => turnDeliveries(1));
    $("deliveries-close").addEventListener("click", closeDeliveries);
    loadWebhooks().then(scheduleRefresh);
  });
})();

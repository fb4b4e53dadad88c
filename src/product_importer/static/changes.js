/* What the upload page and an import's own page share, exposed as window.Changes:
   Changes.browser(slot, job)   the products a plan would change or an import changed, by kind
                                (created / updated), a page at a time from
                                /api/imports/<id>/changes: each changed field before -> after,
                                and the download of changes.csv
   Changes.mappingForm(slot, job, { onRetried })   for a job that failed for want of a column:
                                a select per product field filled from the file's header; it
                                retries the same file with {"columns": {...}} (no second upload)
                                and hands the new job to onRetried */
(function () {
  "use strict";

  const { api, el, format, formErrors, notify, whileBusy } = window.App;
  const PER_PAGE = 20;
  const KINDS = [
    ["created", "Created"],
    ["updated", "Updated"],
  ];
  const FIELDS = ["sku", "name", "description", "active"];
  const REQUIRED = ["sku", "name"];

  let serial = 0; // ids of the elements each browser and form creates, unique on the page

  /* ---- the change list ---------------------------------------------------------------- */

  function browser(slot, job) {
    const id = `changes-${(serial += 1)}`;
    const counts = { created: job.created || 0, updated: job.updated || 0 };
    const state = { kind: counts.created || !counts.updated ? "created" : "updated", page: 1, loading: 0 };
    const tabs = KINDS.map(([kind, label]) =>
      el("button", {
        type: "button", role: "tab", id: `${id}-tab-${kind}`, className: "tab",
        "aria-controls": `${id}-panel`, dataset: { kind },
      }, `${label} `, el("span", { className: "tab-count" }, format.number(counts[kind]))),
    );
    const tablist = el("div", { className: "tabs", role: "tablist", "aria-label": "Kind of change" }, ...tabs);
    const body = el("tbody");
    const head = el("tr");
    const table = el("table", { className: "table stack-sm changes-table" },
      el("caption", { className: "visually-hidden" }, "Changed products"), el("thead", {}, head), body);
    const status = el("p", { className: "page-status", "aria-live": "polite" });
    const prev = el("button", { type: "button", className: "btn btn-sm" }, "‹ Previous");
    const next = el("button", { type: "button", className: "btn btn-sm" }, "Next ›");
    const download = el("a", { className: "btn btn-sm", download: "" }, "Download changes.csv");
    const panel = el("div", { role: "tabpanel", id: `${id}-panel`, className: "changes-panel" },
      el("div", { className: "table-wrap" }, table),
      el("div", { className: "pagination changes-pager" }, status,
        el("div", { className: "pager-buttons" }, prev, next, download)));
    slot.replaceChildren(tablist, panel);

    function select(kind, focus) {
      state.kind = kind;
      state.page = 1;
      tabs.forEach((tab) => {
        const selected = tab.dataset.kind === kind;
        tab.setAttribute("aria-selected", String(selected));
        tab.tabIndex = selected ? 0 : -1;
        if (selected && focus) tab.focus();
      });
      panel.setAttribute("aria-labelledby", `${id}-tab-${kind}`);
      download.href = `/api/imports/${job.id}/changes.csv?kind=${kind}&bom=true`; // for Excel
      load();
    }

    async function load() {
      const ticket = (state.loading += 1); // a slow answer to an older click is dropped
      table.setAttribute("aria-busy", "true");
      const url = `/api/imports/${job.id}/changes?kind=${state.kind}&page=${state.page}&per_page=${PER_PAGE}`;
      try {
        const data = await api("GET", url);
        if (ticket !== state.loading) return;
        render(data);
      } catch (error) {
        if (ticket !== state.loading) return;
        body.replaceChildren(messageRow(`The changes could not be loaded: ${error.message}`));
        status.textContent = "";
        prev.hidden = next.hidden = download.hidden = true;
      } finally {
        if (ticket === state.loading) table.removeAttribute("aria-busy");
      }
    }

    function render(data) {
      const pages = Math.max(1, data.pages || 0);
      const created = state.kind === "created";
      head.replaceChildren(...(created ? CREATED_COLUMNS : UPDATED_COLUMNS).map((name) =>
        el("th", { scope: "col" }, name)));
      const rows = data.items.map((item) => (created ? createdRow(item) : updatedRow(item)));
      body.replaceChildren(...(rows.length ? rows : [messageRow(`No ${state.kind} products.`)]));
      const products = data.total === 1 ? "product" : "products"; // not "1 created products"
      status.textContent = data.total
        ? `Page ${data.page} of ${pages} · ${format.number(data.total)} ${state.kind} ${products}`
        : "";
      const pressed = document.activeElement;
      prev.disabled = data.page <= 1;
      next.disabled = data.page >= pages;
      // Next pressed onto the last page (Previous onto the first) is disabled now: the focus
      // goes to the other button rather than being lost to the page.
      if (pressed === next && next.disabled && !prev.disabled) prev.focus();
      if (pressed === prev && prev.disabled && !next.disabled) next.focus();
      prev.hidden = next.hidden = pages <= 1;
      download.hidden = !data.total;
    }

    tablist.addEventListener("click", (event) => {
      const tab = event.target.closest("[role=tab]");
      if (tab && tab.dataset.kind !== state.kind) select(tab.dataset.kind, false);
    });
    // Arrow keys move between the tabs, as in any tab list.
    tablist.addEventListener("keydown", (event) => {
      if (!["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) return;
      event.preventDefault();
      const at = KINDS.findIndex(([kind]) => kind === state.kind);
      const to = event.key === "Home" ? 0 : event.key === "End" ? KINDS.length - 1 : (at + 1) % KINDS.length;
      select(KINDS[to][0], true);
    });
    prev.addEventListener("click", () => turn(-1));
    next.addEventListener("click", () => turn(1));

    function turn(step) {
      state.page += step;
      load();
    }

    select(state.kind, false);
  }

  const CREATED_COLUMNS = ["SKU", "Name", "Description", "Active"];
  const UPDATED_COLUMNS = ["SKU", "Changed fields (before → after)"];

  function messageRow(text) {
    return el("tr", {}, el("td", { colSpan: 4, className: "empty-cell muted" }, text));
  }

  /* A new product: its values, one column each. */
  function createdRow(item) {
    const value = (field) => {
      const after = (item.changes[field] || {}).after;
      return after === "" || after == null ? "" : shown(after);
    };
    return el("tr", {},
      el("td", { className: "sku", dataset: { label: "SKU" } }, item.sku, changedSince(item)),
      el("td", { dataset: { label: "name" } }, value("name")),
      el("td", { className: "wrap", dataset: { label: "description" } }, value("description")),
      el("td", { dataset: { label: "active" } }, value("active")));
  }

  /* An updated product: each field that changes, before -> after, in the file's column order. */
  function updatedRow(item) {
    const fields = FIELDS.filter((field) => item.changes[field]).map((field) =>
      el("li", {},
        el("span", { className: "diff-field" }, field),
        el("del", { className: "diff-before" }, shown(item.changes[field].before)),
        el("span", { className: "diff-arrow", "aria-hidden": "true" }, "→"),
        el("ins", { className: "diff-after" }, shown(item.changes[field].after))),
    );
    return el("tr", {},
      el("td", { className: "sku", dataset: { label: "SKU" } }, item.sku, changedSince(item)),
      el("td", { className: "wrap", dataset: { label: "Changes" } }, el("ul", { className: "diff" }, ...fields)));
  }

  /* A product changed (or deleted) after the import: an undo leaves it as it is, and a
     created product's values are the ones it has now. */
  function changedSince(item) {
    if (!item.changed_since) return "";
    return el("span", {
      className: "badge badge-warning changed-since",
      title: "Changed after this import by a later import or an edit: an undo leaves it as it is",
    }, "changed since");
  }

  function shown(value) {
    if (value === true) return "true";
    if (value === false) return "false";
    if (value == null || value === "") return "(empty)";
    return String(value);
  }

  /* ---- the column mapping form -------------------------------------------------------- */

  function mappingForm(slot, job, { onRetried }) {
    const id = `mapping-${(serial += 1)}`;
    const choices = columnChoices(job.header || []);
    const chosen = job.columns || {};
    const summary = el("p", { className: "form-error alert alert-error", role: "alert" });
    const fields = FIELDS.map((field) => mappingField(id, field, choices, chosen[field]));
    const submit = el("button", { type: "submit", className: "btn btn-primary" }, "Import with these columns");
    const form = el("form", { className: "mapping-form", noValidate: true, "aria-label": "Column mapping" },
      summary,
      el("div", { className: "form-grid cols-2" }, ...fields),
      el("div", { className: "job-actions" }, submit));
    slot.replaceChildren(form);
    const errors = formErrors(form);

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      errors.clear();
      const mapping = {};
      FIELDS.forEach((field) => {
        const value = form.elements[field].value;
        // An optional field left "(not in the file)" while the header has a column of its
        // name (once, or twice) is sent as null: the server would take that column anyway.
        const ownName = choices.some((choice) => choice.key === field);
        if (value) mapping[field] = value;
        else if (ownName && !REQUIRED.includes(field)) mapping[field] = null;
      });
      const problem = mappingProblem(mapping);
      if (problem) return errors.show(problem);
      const options = { columns: mapping };
      if (job.plan) options.plan = true;
      if (job.max_invalid) options.max_invalid = job.max_invalid;
      try {
        const retried = await whileBusy({ button: submit, text: "Starting…" }, () =>
          api("POST", `/api/imports/${job.id}/retry`, options));
        onRetried(retried);
      } catch (error) {
        if (error.status === 422) errors.show(error);
        else notify(`Could not retry: ${error.message}`, "error");
      }
    });
    return form;
  }

  /* The header's columns to choose from. A name it holds more than once (any case, spaces
     ignored, as the server matches them) is shown once and cannot be chosen: the server
     could not tell which of them is meant. */
  function columnChoices(header) {
    const keyOf = (column) => column.trim().toLowerCase();
    const counts = {};
    header.forEach((column) => (counts[keyOf(column)] = (counts[keyOf(column)] || 0) + 1));
    const shown = new Set();
    const choices = [];
    header.filter((column) => column && column.trim()).forEach((column) => {
      const key = keyOf(column);
      if (shown.has(key)) return;
      shown.add(key);
      choices.push({ column, key, usable: counts[key] === 1 });
    });
    return choices;
  }

  function mappingField(id, field, choices, chosen) {
    const required = REQUIRED.includes(field);
    const selectId = `${id}-${field}`;
    const own = choices.find((choice) => choice.usable && choice.key === field);
    // null: the last mapping said the file has no such column
    const preset = chosen === null ? "" : chosen || (own ? own.column : "");
    const options = choices.map(({ column, usable }) =>
      usable
        ? el("option", { value: column }, column)
        : el("option", { value: column, disabled: true }, `${column} (twice in the file)`));
    const select = el("select", { id: selectId, name: field, "aria-describedby": `${selectId}-error` },
      el("option", { value: "" }, required ? "Choose a column…" : "(not in the file)"),
      ...options);
    select.value = preset;
    if (required) select.setAttribute("aria-required", "true");
    return el("div", { className: "field" },
      el("label", { htmlFor: selectId }, `${field}${required ? "" : " (optional)"}`),
      select,
      el("p", { className: "field-error", id: `${selectId}-error`, dataset: { errorFor: field } }));
  }

  /* What the server would refuse, said beside the field before the request. */
  function mappingProblem(mapping) {
    const details = {};
    REQUIRED.filter((field) => !mapping[field]).forEach((field) => {
      details[field] = `Choose the column that holds the ${field}.`;
    });
    const seen = {};
    Object.entries(mapping).forEach(([field, column]) => {
      if (column === null) return;
      if (seen[column]) details[field] = `“${column}” already feeds ${seen[column]}; a column feeds one field.`;
      else seen[column] = field;
    });
    if (!Object.keys(details).length) return null;
    return { message: "Choose a column for each required field.", details };
  }

  window.Changes = { browser, mappingForm };
})();

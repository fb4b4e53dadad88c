/* The products page: a table filled from GET /api/products, with filters, sorting and page
   numbers kept in the address; create and edit in a modal form; delete one product or all. */
(function () {
  "use strict";

  const { api, ApiError, can, el, format, formErrors, notify, openDialog, closeDialog, whileBusy } = window.App;
  const $ = (id) => document.getElementById(id);
  const FILTERS = ["sku", "name", "description", "active"];
  const EDITABLE = ["sku", "name", "description", "active"];
  const FILTER_LABELS = { sku: "SKU", name: "Name", description: "Description", active: "Status" };
  const DEFAULT_SORT = "-updated_at";
  const DEFAULT_PER_PAGE = 50;
  const DEBOUNCE_MS = 300;

  const filterForm = $("filters");
  const table = $("products-table");
  const tbody = $("products-body");
  const state = { filters: {}, page: 1, perPage: DEFAULT_PER_PAGE, sort: DEFAULT_SORT, items: [], total: 0 };
  let loadSeq = 0;

  /* ---- state <-> address -------------------------------------------------------------- */

  /* An address edited by hand or kept from long ago may hold what the controls do not offer
     (?active=yes, ?sort=price, ?per_page=500): such a value is left out, as the form shows it,
     rather than sent to the API for a page with no products at all. */
  function readAddress() {
    const params = new URLSearchParams(location.search);
    FILTERS.forEach((name) => (state.filters[name] = (params.get(name) || "").trim()));
    if (!offered($("filter-active"), state.filters.active)) state.filters.active = "";
    state.page = positive(params.get("page"), 1);
    const perPage = params.get("per_page");
    state.perPage = offered($("per-page"), perPage) ? Number(perPage) : DEFAULT_PER_PAGE;
    const sort = params.get("sort");
    state.sort = offered($("sort-select"), sort) ? sort : DEFAULT_SORT;
  }

  function offered(select, value) {
    return [...select.options].some((option) => option.value === value);
  }

  function positive(text, fallback) {
    const value = Number.parseInt(text, 10);
    return Number.isFinite(value) && value > 0 ? value : fallback;
  }

  /* Query for the page address (defaults left out) or for the API (`full`). */
  function query({ page = state.page, full = false } = {}) {
    const params = new URLSearchParams();
    FILTERS.forEach((name) => state.filters[name] && params.set(name, state.filters[name]));
    if (full || state.sort !== DEFAULT_SORT) params.set("sort", state.sort);
    if (full || state.perPage !== DEFAULT_PER_PAGE) params.set("per_page", String(state.perPage));
    if (full || page !== 1) params.set("page", String(page));
    return params.toString();
  }

  function writeAddress(mode) {
    const search = query();
    const url = search ? `?${search}` : location.pathname;
    if (mode === "push") history.pushState(null, "", url);
    else history.replaceState(null, "", url);
  }

  function fillForm() {
    FILTERS.forEach((name) => (filterForm.elements[name].value = state.filters[name]));
    $("per-page").value = String(state.perPage);
  }

  function readForm() {
    FILTERS.forEach((name) => (state.filters[name] = filterForm.elements[name].value.trim()));
  }

  function filtering() {
    return FILTERS.some((name) => state.filters[name]);
  }

  /* ---- loading and rendering ---------------------------------------------------------- */

  async function load() {
    const seq = ++loadSeq;
    table.setAttribute("aria-busy", "true");
    try {
      const data = await api("GET", `/api/products?${query({ full: true })}`);
      if (seq !== loadSeq) return; // a newer request is on its way
      if (data.pages > 0 && state.page > data.pages) return goToPage(data.pages, "replace");
      Object.assign(state, { items: data.items, total: data.total, pages: data.pages });
      render();
    } catch (error) {
      if (seq !== loadSeq) return;
      if (error.status === 422 && state.page > 1) return goToLastPage();
      showNothing();
      $("list-summary").textContent = "The products could not be loaded.";
      notify(`Could not load the products. ${whyNotLoaded(error)}`, "error");
    } finally {
      if (seq === loadSeq) table.removeAttribute("aria-busy");
    }
  }

  /* A list that could not be loaded: the rows, pages and export of the filters before would
     pass for those of the form, which shows the filters that failed. */
  function showNothing() {
    const parts = [tbody, $("pagination-top"), $("pagination")];
    const hadFocus = parts.some((part) => part.contains(document.activeElement));
    Object.assign(state, { items: [], total: 0, pages: 0 });
    tbody.replaceChildren();
    parts.slice(1).forEach((nav) => (nav.hidden = true));
    $("export-link").removeAttribute("href");
    $("export-link").setAttribute("aria-disabled", "true");
    if (hadFocus) $("list-summary").focus();
  }

  /* The API's "The filters are not valid; see details." names no filter: say which, and why.
     A pasted page of text makes an address longer than the API takes (414: its message speaks
     of bytes and addresses, this one of the form): "try again" would fail the same way. */
  function whyNotLoaded(error) {
    if (error.status === 414) {
      return "The filters are too long: search for a shorter part of the text (a few words find it).";
    }
    const details = error.status === 422 && error.details && typeof error.details === "object" ? error.details : {};
    const named = Object.entries(details).filter(([name]) => FILTER_LABELS[name]);
    if (!named.length) return error.message;
    const lowered = (why) => String(why).charAt(0).toLowerCase() + String(why).slice(1);
    return named.map(([name, why]) => `The ${FILTER_LABELS[name]} filter ${lowered(why)}`).join(" ");
  }

  function goToPage(page, mode) {
    state.page = page;
    writeAddress(mode);
    return load();
  }

  /* A page past any the API serves (?page=999999): show the last one, not the first. */
  async function goToLastPage() {
    try {
      const first = await api("GET", `/api/products?${query({ page: 1, full: true })}`);
      return goToPage(Math.max(1, first.pages), "replace");
    } catch (error) {
      return goToPage(1, "replace");
    }
  }

  /* After choosing a page: the new rows start at the table's top, and so does the focus. */
  async function turnTo(page) {
    await goToPage(page, "push");
    $("pagination-top").scrollIntoView({ block: "start" });
    table.focus({ preventScroll: true });
  }

  function render() {
    const focus = focusedAction();
    tbody.replaceChildren(...(state.items.length ? state.items.map(productRow) : [emptyRow()]));
    offerWholeDescriptions();
    if (focus) restoreFocus(focus);
    const count = `${format.number(state.total)} product${state.total === 1 ? "" : "s"}`;
    const match = state.total === 1 ? "matches" : "match";
    $("list-summary").textContent = filtering() ? `${count} ${match} the filters` : count;
    renderSort();
    renderPagination();
    $("sort-select").value = state.sort;
    $("export-link").href = `/api/products/export.csv?${exportQuery()}`;
    $("export-link").removeAttribute("aria-disabled");
    if (can("admin")) disableDeleteAll(!filtering() && state.total === 0);
  }

  /* A disabled button drops the focus to the page's top: keep a keyboard user's place. */
  function disableDeleteAll(disabled) {
    const button = $("delete-all-button");
    const hadFocus = document.activeElement === button;
    button.disabled = disabled;
    if (disabled && hadFocus) $("list-summary").focus();
  }

  /* A row button that had the focus is replaced on every render: focus its successor. */
  function focusedAction() {
    const active = document.activeElement;
    if (!active || !tbody.contains(active)) return null;
    return { action: active.dataset.action, id: active.dataset.id };
  }

  function restoreFocus({ action, id }) {
    const again = tbody.querySelector(`button[data-action="${action}"][data-id="${id}"]`);
    (again || $("list-summary")).focus();
  }

  function exportQuery() {
    const params = new URLSearchParams();
    FILTERS.forEach((name) => state.filters[name] && params.set(name, state.filters[name]));
    params.set("sort", state.sort);
    params.set("bom", "true"); // people open it in Excel, which reads UTF-8 right only with it
    return params.toString();
  }

  function cell(label, ...content) {
    return el("td", { dataset: { label } }, ...content);
  }

  function productRow(product) {
    const description = el("div", { className: "truncate" }, product.description || "–");
    if (product.description) description.title = product.description;
    if (product.description) description.dataset.description = "";
    const status = product.active
      ? el("span", { className: "badge badge-success" }, "Active")
      : el("span", { className: "badge badge-muted" }, "Inactive");
    const updated = el("time", { className: "nowrap", dateTime: product.updated_at });
    updated.textContent = format.dateTime(product.updated_at);
    return el(
      "tr",
      { dataset: { id: product.id } },
      el("td", { className: "sku", dataset: { label: "SKU" } }, product.sku),
      cell("Name", product.name),
      cell("Description", description),
      cell("Status", status),
      cell("Updated", updated),
      el(
        "td",
        { className: "actions" },
        ...(can("editor")
          ? [
              actionButton("Edit", `Edit ${product.sku}`, "edit", product.id),
              actionButton("Delete", `Delete ${product.sku}`, "delete", product.id),
            ]
          : []),
      ),
    );
  }

  /* A description cut to one line (its title shows only to a mouse) opens in place with a click,
     Enter or Space: on a phone, or for a viewer, there is no other way to read all of it. */
  function offerWholeDescriptions() {
    tbody.querySelectorAll("[data-description]").forEach((box) => {
      if (box.scrollWidth <= box.clientWidth && !box.textContent.includes("\n")) return;
      box.tabIndex = 0;
      box.setAttribute("role", "button");
      box.setAttribute("aria-expanded", "false");
    });
  }

  function toggleDescription(box) {
    const open = box.getAttribute("aria-expanded") !== "true";
    box.setAttribute("aria-expanded", String(open));
    box.classList.toggle("expanded", open);
  }

  tbody.addEventListener("click", (event) => {
    const box = event.target.closest('[data-description][role="button"]');
    if (box) toggleDescription(box);
  });
  tbody.addEventListener("keydown", (event) => {
    const box = event.target.closest('[data-description][role="button"]');
    if (!box || (event.key !== "Enter" && event.key !== " ")) return;
    event.preventDefault(); // Space would scroll the page
    toggleDescription(box);
  });

  function actionButton(text, label, action, id) {
    const className = action === "delete" ? "btn btn-sm btn-danger-outline" : "btn btn-sm";
    return el("button", { type: "button", className, dataset: { action, id }, "aria-label": label }, text);
  }

  function emptyRow() {
    let box;
    if (filtering()) {
      const clear = el("button", { type: "button", className: "btn btn-sm" }, "Clear filters");
      clear.addEventListener("click", clearFilters);
      box = el(
        "div",
        { className: "empty-state" },
        el("p", {}, el("strong", {}, "No products match these filters")),
        el("p", {}, "Try fewer or shorter filters."),
        clear,
      );
    } else {
      const hint = can("editor")
        ? el("p", {}, el("a", { href: "/" }, "Import a CSV file"), " or add a product with “New product”.")
        : el("p", {}, "Products appear here once an editor imports or adds them.");
      box = el("div", { className: "empty-state" }, el("p", {}, el("strong", {}, "No products yet")), hint);
    }
    return el("tr", {}, el("td", { className: "empty-cell", colSpan: 6 }, box));
  }

  function renderSort() {
    const field = state.sort.replace(/^-/, "");
    const descending = state.sort.startsWith("-");
    table.querySelectorAll("th[data-sort]").forEach((th) => {
      if (th.dataset.sort === field) th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    });
  }

  // A phone's width (app.css): its pager shows the first, the current and the last page only,
  // so that "Next ›" stays on the line of the others (the status and "Go to page" say the rest).
  const PHONE = window.matchMedia("(max-width: 640px)");

  /* Page numbers: the first, the last, and two either side of the current one (on a phone,
     none either side); null for a gap ("…"). On a phone a gap never stands for one page alone:
     that page is shown instead. */
  function pageNumbers(current, pages) {
    const beside = PHONE.matches ? 0 : 2;
    const shown = (n) => n === 1 || n === pages || Math.abs(n - current) <= beside;
    const numbers = [];
    for (let n = 1; n <= pages; n += 1) {
      const alone = PHONE.matches && !shown(n) && shown(n - 1) && shown(n + 1);
      if (shown(n) || alone) numbers.push(n);
      else if (numbers[numbers.length - 1] !== null) numbers.push(null);
    }
    return numbers;
  }

  function pageLink(page, text, label, { current = false, disabled = false } = {}) {
    const search = query({ page });
    const href = search ? `?${search}` : location.pathname;
    const link = el("a", { href, dataset: { page }, "aria-label": label }, text);
    if (current) link.setAttribute("aria-current", "page");
    if (disabled) {
      link.setAttribute("aria-disabled", "true");
      link.tabIndex = -1;
    }
    return el("li", {}, link);
  }

  /* The same page controls above and below the table. */
  function renderPagination() {
    const pages = Math.max(1, state.pages || 0);
    for (const nav of [$("pagination-top"), $("pagination")]) {
      nav.hidden = state.total === 0;
      nav.querySelector(".page-status").textContent = `Page ${state.page} of ${pages}`;
      const items = [pageLink(state.page - 1, "‹ Prev", "Previous page", { disabled: state.page <= 1 })];
      pageNumbers(state.page, pages).forEach((n) => {
        if (n === null) items.push(el("li", {}, el("span", { className: "gap" }, "…")));
        else items.push(pageLink(n, String(n), `Page ${n}`, { current: n === state.page }));
      });
      items.push(pageLink(state.page + 1, "Next ›", "Next page", { disabled: state.page >= pages }));
      nav.querySelector(".page-links").replaceChildren(...items);
    }
    $("go-to-page-number").max = String(pages);
    $("go-to-page").hidden = pages < 2;
  }
  PHONE.addEventListener("change", renderPagination); // a phone turned, a window resized

  /* ---- filters, sorting, pages -------------------------------------------------------- */

  let debounce = null;

  function applyFilters() {
    clearTimeout(debounce);
    readForm();
    state.page = 1;
    writeAddress("replace");
    load();
  }

  function clearFilters() {
    filterForm.reset();
    FILTERS.forEach((name) => (filterForm.elements[name].value = ""));
    applyFilters();
    filterForm.elements.sku.focus();
  }

  filterForm.addEventListener("submit", (event) => {
    event.preventDefault();
    applyFilters();
  });
  filterForm.addEventListener("input", (event) => {
    if (event.target.tagName === "SELECT") return applyFilters();
    clearTimeout(debounce);
    debounce = setTimeout(applyFilters, DEBOUNCE_MS);
  });
  $("clear-filters").addEventListener("click", clearFilters);

  $("per-page").addEventListener("change", (event) => {
    state.perPage = Number(event.target.value);
    goToPage(1, "replace");
  });

  table.querySelector("thead").addEventListener("click", (event) => {
    const th = event.target.closest("th[data-sort]");
    if (!th) return;
    const field = th.dataset.sort;
    const current = state.sort.replace(/^-/, "");
    const descendingFirst = field === "updated_at";
    if (current === field) state.sort = state.sort.startsWith("-") ? field : `-${field}`;
    else state.sort = descendingFirst ? `-${field}` : field;
    goToPage(1, "replace");
  });

  for (const nav of [$("pagination-top"), $("pagination")]) {
    nav.querySelector(".page-links").addEventListener("click", (event) => {
      const link = event.target.closest("a[data-page]");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      turnTo(Number(link.dataset.page));
    });
  }

  $("go-to-page").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("go-to-page-number");
    const wanted = Number.parseInt(input.value, 10);
    if (!Number.isFinite(wanted)) return input.focus();
    input.value = "";
    turnTo(Math.min(Math.max(1, wanted), Math.max(1, state.pages || 1)));
  });

  $("sort-select").addEventListener("change", (event) => {
    state.sort = event.target.value;
    goToPage(1, "replace");
  });

  window.addEventListener("popstate", () => {
    readAddress();
    fillForm();
    load();
  });

  /* ---- create and edit ---------------------------------------------------------------- */

  const productDialog = $("product-dialog");
  const productForm = $("product-form");
  const productErrors = formErrors(productForm);
  let editing = null; // the product as last read, while its form is open
  let editingEtag = null; // its version, so that a save cannot undo a change made meanwhile
  let opening = false;

  /* The product as it is now, not as the table showed it when it loaded, with its version;
     null (said, and the list drawn again) when it is gone or could not be read. */
  async function readNow(product, goneWords) {
    if (opening) return null;
    opening = true;
    try {
      return await api("GET", `/api/products/${product.id}`, undefined, { etag: true });
    } catch (error) {
      if (error.status === 404) notify(`${product.sku} ${goneWords}`, "info");
      else notify(`Could not open ${product.sku}: ${error.message}`, "error");
      load();
      return null;
    } finally {
      opening = false;
    }
  }

  /* Edit the product as it is now. */
  async function editProduct(product) {
    const read = await readNow(product, "was deleted meanwhile.");
    if (read) openProductForm(read.data, read.etag);
  }

  function openProductForm(product, etag = null) {
    editing = product || null;
    editingEtag = etag;
    productForm.reset();
    productErrors.clear();
    $("product-dialog-title").textContent = product ? `Edit ${product.sku}` : "New product";
    $("product-save").textContent = product ? "Save changes" : "Create product";
    productForm.elements.sku.value = product ? product.sku : "";
    productForm.elements.name.value = product ? product.name : "";
    productForm.elements.description.value = product ? product.description || "" : "";
    productForm.elements.active.checked = product ? product.active : true;
    openDialog(productDialog, { focus: product ? productForm.elements.name : productForm.elements.sku });
  }

  /* What the API trims (rules.SPACE): String.trim() also takes U+FEFF, \v and \f, which the
     API keeps (or refuses), so a form saved untouched would change a SKU holding U+FEFF. */
  const SPACE = "[\\t\\n\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
  const AROUND = new RegExp(`^${SPACE}+|${SPACE}+$`, "g");
  const trimmed = (text) => text.replace(AROUND, "");

  function formValues() {
    const elements = productForm.elements;
    return {
      sku: trimmed(elements.sku.value),
      name: trimmed(elements.name.value),
      description: trimmed(elements.description.value),
      active: elements.active.checked,
    };
  }

  /* For an edit, send only what changed (PATCH is partial). */
  function changes(values) {
    if (!editing) return values;
    return Object.fromEntries(Object.entries(values).filter(([key, value]) => !sameValue(key, value, editing[key])));
  }

  /* A textarea gives every line break as \n: a description imported with \r\n (as Excel
     writes them) is the same text, not a change to save over it. */
  function sameValue(name, value, stored) {
    if (name === "description") return value === (stored || "").replace(/\r\n?/g, "\n");
    return value === stored;
  }

  function send(body) {
    if (!editing) return api("POST", "/api/products", body);
    const headers = editingEtag ? { "If-Match": editingEtag } : {};
    return api("PATCH", `/api/products/${editing.id}`, body, { headers });
  }

  /* Save the form; `mayRetry`: once, at once, when a change made meanwhile is not in the way. */
  async function save(mayRetry) {
    const body = changes(formValues());
    if (editing && !Object.keys(body).length) {
      closeDialog(productDialog);
      return notify("Nothing changed.", "info");
    }
    const busy = { button: $("product-save"), text: "Saving…", dialog: productDialog };
    let product;
    try {
      product = await whileBusy(busy, () => send(body));
    } catch (error) {
      if (error.status === 412 && error.details) return changedMeanwhile(error.details, body, mayRetry);
      if (error.status === 404 && editing) return deletedMeanwhile();
      productErrors.show(error);
      return;
    }
    closeDialog(productDialog);
    notify(editing ? `Saved ${product.sku}.` : `Created ${product.sku}.`, "success");
    load();
  }

  /* Someone changed the product while its form was open. The fields they changed and this
     person did not take their values; when they changed none that this person changed too,
     the edit goes again at once; else each such field says what it is now, and Save again
     replaces it, knowingly. */
  function changedMeanwhile({ product, etag }, mine, mayRetry) {
    const theirs = EDITABLE.filter((name) => product[name] !== editing[name]);
    theirs.filter((name) => !(name in mine)).forEach((name) => setFormValue(name, product[name]));
    const clashes = theirs.filter((name) => name in mine && !sameValue(name, mine[name], product[name]));
    editing = product;
    editingEtag = etag;
    $("product-dialog-title").textContent = `Edit ${product.sku}`; // they may have renamed it
    if (!clashes.length && mayRetry) return save(false);
    const words = (name) =>
      `Someone else changed this to ${shown(name, product[name])} while you were editing. ` +
      "Save again to replace it with yours, or Cancel to keep theirs.";
    const details = Object.fromEntries(clashes.map((name) => [name, words(name)]));
    const message = "Someone else changed this product while you were editing it. Save again to keep yours.";
    productErrors.show(new ApiError(412, message, "precondition_failed", details));
  }

  /* Someone deleted the product while its form was open: what was typed is not lost, the
     form becomes a new product's that can add it again ("Product 12 does not exist" helps no one). */
  function deletedMeanwhile() {
    const { sku } = editing;
    editing = null;
    editingEtag = null;
    $("product-dialog-title").textContent = "New product";
    $("product-save").textContent = "Create product";
    const message = `${sku} was deleted while you were editing it. Create product adds it again with these values; Cancel leaves it deleted.`;
    productErrors.show(new ApiError(404, message, "not_found"));
    load();
  }

  function setFormValue(name, value) {
    const control = productForm.elements[name];
    if (control.type === "checkbox") control.checked = value;
    else control.value = value || "";
  }

  function shown(name, value) {
    if (name === "active") return value ? "Active" : "Inactive";
    if (!value) return "nothing (empty)";
    return `“${value.length > 80 ? `${value.slice(0, 80)}…` : value}”`;
  }

  productForm.addEventListener("submit", (event) => {
    event.preventDefault();
    productErrors.clear();
    save(true);
  });

  if (can("editor")) $("new-product-button").addEventListener("click", () => openProductForm(null));

  /* ---- delete one --------------------------------------------------------------------- */

  const deleteDialog = $("delete-dialog");
  let deleting = null; // the product as last read, while its dialog is open
  let deletingEtag = null; // its version: a delete never takes a change it did not show

  tbody.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const product = state.items.find((item) => String(item.id) === button.dataset.id);
    if (!product) return;
    if (button.dataset.action === "edit") return editProduct(product);
    confirmDelete(product);
  });

  /* Ask about the product as it is now, not as the table showed it when it loaded: renamed
     meanwhile, its question names the SKU that will be gone. */
  async function confirmDelete(product) {
    const read = await readNow(product, "was already deleted.");
    if (!read) return;
    askToDelete(read.data, read.etag, "");
    openDialog(deleteDialog);
  }

  function askToDelete(product, etag, warning) {
    deleting = product;
    deletingEtag = etag;
    $("delete-sku").textContent = product.sku;
    $("delete-changed").textContent = warning;
    $("delete-changed").hidden = !warning;
  }

  /* Someone changed the product while the dialog was open: it is kept, the dialog says what it
     is now, and Delete again deletes it knowingly (Cancel, which has the focus, keeps it). */
  function changedBeforeDelete({ product, etag }) {
    const name = product.name.length > 80 ? `${product.name.slice(0, 80)}…` : product.name;
    const warning =
      `Someone else changed this product while this dialog was open: it is now ${product.sku}, ` +
      `“${name}”. Delete it anyway, or Cancel to keep it.`;
    askToDelete(product, etag, warning);
    deleteDialog.querySelector("[data-close-dialog][autofocus]").focus();
  }

  $("delete-confirm").addEventListener("click", async (event) => {
    const busy = { button: event.currentTarget, text: "Deleting…", dialog: deleteDialog };
    const headers = deletingEtag ? { "If-Match": deletingEtag } : {};
    try {
      await whileBusy(busy, () => api("DELETE", `/api/products/${deleting.id}`, undefined, { headers }));
      notify(`Deleted ${deleting.sku}.`, "success");
    } catch (error) {
      if (error.status === 412 && error.details) return changedBeforeDelete(error.details);
      if (error.status === 404) notify(`${deleting.sku} was already deleted.`, "info");
      else notify(`Could not delete ${deleting.sku}: ${error.message}`, "error");
    }
    closeDialog(deleteDialog);
    load();
  });

  /* ---- delete all --------------------------------------------------------------------- */

  const deleteAllDialog = $("delete-all-dialog");

  /* The question counts the catalog as it is now: the table may be older than an import
     (and filtered, it never counted the catalog). Until the count comes, it counts nothing. */
  if (can("admin")) $("delete-all-button").addEventListener("click", async () => {
    $("delete-all-count").textContent = willBeDeleted("Every product in the catalog");
    $("delete-all-progress").textContent = "";
    openDialog(deleteAllDialog);
    let total;
    try {
      ({ total } = await api("GET", "/api/products?per_page=1"));
    } catch (error) {
      return; // the words without a count stand; the delete says how many it deleted
    }
    if (!deleteAllDialog.open) return;
    if (total === 0) return ($("delete-all-count").textContent = "The catalog is empty now: nothing will be deleted.");
    const all = total === 1 ? "The one product in the catalog" : `All ${format.number(total)} products in the catalog`;
    $("delete-all-count").textContent = willBeDeleted(all);
  });

  function willBeDeleted(what) {
    return filtering() ? `${what} will be deleted, not only those the filters show.` : `${what} will be deleted.`;
  }

  $("delete-all-confirm").addEventListener("click", async (event) => {
    const busy = { button: event.currentTarget, text: "Deleting…", dialog: deleteAllDialog };
    $("delete-all-progress").textContent = "Deleting every product. A large catalog takes a few seconds…";
    try {
      const result = await whileBusy(busy, () => api("DELETE", "/api/products?confirm=true"));
      const deleted = result && result.deleted != null ? result.deleted : 0;
      notify(`Deleted ${format.number(deleted)} product${deleted === 1 ? "" : "s"}.`, "success");
    } catch (error) {
      notify(`The products were not deleted: ${error.message}`, "error");
    }
    closeDialog(deleteAllDialog);
    goToPage(1, "replace");
  });

  /* ---- start -------------------------------------------------------------------------- */

  readAddress();
  fillForm();
  writeAddress("replace");
  load();
})();

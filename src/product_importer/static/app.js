/* Shared helpers for every page, exposed as window.App:
   App.api(method, url, body, { headers, etag })   JSON request with the CSRF token (and
                                `headers`); throws App.ApiError. With `etag: true` it returns
                                { data, etag }: the body and the ETag (for If-Match). A 401
                                (the session ended) also shows a "Sign in again" notice; a 403
                                for a stale CSRF token (signed in again in another tab)
                                fetches the session's token and sends the request once more
   App.csrfToken()              the token from <meta name="csrf-token">
   App.freshCsrfTokenAfter(status, body)   after a 403 for a stale CSRF token, fetch the
                                session's token into the page and resolve true (send once
                                more); false for any other answer (for requests not sent by api)
   App.fetchPage(url)           the page (this one by default) as the server renders it now, a
                                Document to take a fresh part from; null when not had (a
                                session that ended shows the "Sign in again" notice)
   App.el(tag, props, ...children)   a new element: props are properties (className, type,
                                dataset: {...}) or else attributes ("aria-label"); null
                                children are skipped
   App.formErrors(form)         { clear(), show(apiError) }: an API error's details beside the
                                fields (each in its [data-error-for="<field>"] box, its control
                                marked aria-invalid until edited), the rest in the .form-error box
   App.notify(text, kind)       a notice (toast): kind "success" | "error" | "info"
   App.openDialog(dialog), App.closeDialog(dialog)   modal <dialog> with a focus trap
   App.setBusy(button, busy, busyText)   spinner and disabled state on a button
   App.whileBusy({ button, text, dialog }, work)   await work() with the button busy and the
                                dialog (optional) kept open; both are restored however it ends
   App.format.*                 numbers, bytes, durations, dates
   App.localTimes(root)         show <time datetime="..." data-local> in the reader's time zone
   App.withLocalTimes(text)     a server's message as nodes, each UTC moment in it ("of
                                2026-12-04 19:24 UTC") a <time> in the reader's time zone
   App.replaceKeepingFocus(part, fresh)   swap a part of the page for a fresh copy of it; the
                                focus moves to the same control in the copy
   App.can(role)                whether the signed-in account has every right of a role
                                (<body data-role>); the server refuses the rest anyway */
(function () {
  "use strict";

  const SAFE_METHODS = ["GET", "HEAD", "OPTIONS"];

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  /* Signing in again (in another tab) starts a new session with a new token: take it from the
     server into the page (its <meta> and its forms' fields), so the page goes on without a reload. */
  async function refreshCsrfToken() {
    const response = await fetch("/csrf-token", { headers: { Accept: "application/json" }, credentials: "same-origin" });
    const { csrf_token: token } = response.ok ? await response.json() : {};
    if (!token) throw new Error(`no CSRF token (${response.status})`);
    document.querySelector('meta[name="csrf-token"]').content = token;
    document.querySelectorAll('input[name="csrf_token"]').forEach((field) => (field.value = token));
  }

  function isStaleCsrf(status, body) {
    const error = body && body.error;
    return status === 403 && Boolean(error && error.details && error.details.reason === "csrf_token");
  }

  /* Whether the answer was a stale token's 403 and the page now holds a fresh token: the CSRF
     check runs before the view, so nothing was done and the request can be sent once more.
     When the token cannot be fetched, false: the 403 ("Reload the page and retry") stands. */
  async function freshCsrfTokenAfter(status, body) {
    if (!isStaleCsrf(status, body)) return false;
    try {
      await refreshCsrfToken();
      return true;
    } catch (failed) {
      return false;
    }
  }

  class ApiError extends Error {
    constructor(status, message, code, details) {
      super(message);
      this.status = status;
      this.code = code || "error";
      this.details = details == null ? null : details;
    }
  }

  /* A page whose session ended (it expired, or the person signed out in another tab): the
     API's 401 speaks of tokens to programs; a person needs to sign in again, and where. */
  const SIGNED_OUT = "You are signed out: your session has ended. Sign in again, then try again.";

  function signedOutNotice() {
    if (document.getElementById("signed-out-notice")) return;
    const notice = notify(SIGNED_OUT, "error", { timeout: 0 });
    notice.id = "signed-out-notice";
    notice.dataset.shownAt = String(performance.now());
    // A new tab: what this page holds (an open form, its filters) is still here afterwards.
    const next = encodeURIComponent(location.pathname + location.search);
    const link = el("a", { href: `/login?next=${next}`, target: "_blank", rel: "noopener" }, "Sign in again");
    notice.querySelector(".notice-text").append(" ", link);
  }

  function errorFrom(status, body) {
    if (status === 401) {
      signedOutNotice();
      return new ApiError(401, SIGNED_OUT, "unauthorized");
    }
    const error = body && body.error;
    if (error && error.message) return new ApiError(status, error.message, error.code, error.details);
    if (status === 0) return new ApiError(0, "The server could not be reached. Check your connection and try again.");
    return new ApiError(status, `The server answered ${status}. Try again in a moment.`);
  }

  /* Send a JSON request; state-changing ones carry the CSRF token. Returns the parsed body,
     or { data, etag } when `etag` is asked for. */
  async function api(method, url, body, { headers: extra = {}, etag = false } = {}) {
    const sentAt = performance.now();
    let { response, data } = await send(method, url, body, extra);
    if (await freshCsrfTokenAfter(response.status, data)) {
      ({ response, data } = await send(method, url, body, extra));
    }
    if (!response.ok) throw errorFrom(response.status, data);
    signedInAgain(sentAt);
    return etag ? { data, etag: response.headers.get("ETag") } : data;
  }

  /* The session works (again): a "Sign in again" notice left from before is out of date. Not
     when the request that worked was sent before the notice: a slow answer to a request sent
     while signed in says nothing of the session now, and would take the link from under the
     pointer of someone about to sign in again. */
  function signedInAgain(sentAt) {
    const signedOut = document.getElementById("signed-out-notice");
    if (signedOut && sentAt > Number(signedOut.dataset.shownAt)) signedOut.remove();
  }

  /* This page as the server renders it now, for a part that refreshes itself: a Document, or
     null when it could not be had. A session that has ended is led to the sign-in page: that
     is said, as for the API's 401, rather than the page showing its old state for good. */
  async function fetchPage(url = location.href) {
    const sentAt = performance.now();
    try {
      const response = await fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (response.redirected && new URL(response.url).pathname === "/login") {
        signedOutNotice();
        return null;
      }
      if (!response.ok) return null;
      signedInAgain(sentAt);
      return new DOMParser().parseFromString(await response.text(), "text/html");
    } catch (networkError) {
      return null; // the next round tries again
    }
  }

  /* One try of a request: the response and its parsed body (null for none). */
  async function send(method, url, body, extra) {
    const headers = { Accept: "application/json", ...extra };
    if (!SAFE_METHODS.includes(method)) headers["X-CSRFToken"] = csrfToken();
    const init = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (networkError) {
      throw errorFrom(0, null);
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    return { response, data };
  }

  /* ---- building the page ------------------------------------------------------------- */

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    Object.entries(props).forEach(([key, value]) => {
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key in node) node[key] = value;
      else node.setAttribute(key, value);
    });
    node.append(...children.filter((child) => child != null));
    return node;
  }

  /* ---- notices ------------------------------------------------------------------------ */

  function notify(text, kind = "success", { timeout } = {}) {
    const region = document.getElementById("notices");
    const notice = el("div", { className: `notice notice-${kind}` }, el("div", { className: "notice-text" }, text));
    // Errors interrupt screen readers; other notices wait their turn (the region is polite).
    if (kind === "error") notice.setAttribute("role", "alert");
    const close = el("button", { type: "button", className: "notice-close", "aria-label": "Dismiss notice" }, "×");
    close.addEventListener("click", () => notice.remove());
    notice.append(close);
    region.append(notice);
    const ms = timeout === undefined ? (kind === "error" ? 12000 : 6000) : timeout;
    if (ms) removeWhenLetGo(notice, ms);
    return notice;
  }

  /* Remove a notice `ms` after it appeared, or after the pointer or the focus left it: one
     being read (pointed at, or reached with Tab) stays, however slowly (WCAG 2.2.1). A tap
     holds nothing: a touch screen keeps :hover after it, and would keep the notice for good. */
  function removeWhenLetGo(notice, ms) {
    let timer = setTimeout(() => notice.remove(), ms);
    let pointedAt = false;
    const hold = () => clearTimeout(timer);
    const letGo = () => {
      if (pointedAt || notice.contains(document.activeElement)) return;
      clearTimeout(timer);
      timer = setTimeout(() => notice.remove(), ms);
    };
    notice.addEventListener("pointerenter", (event) => {
      if (event.pointerType === "touch") return;
      pointedAt = true;
      hold();
    });
    notice.addEventListener("pointerleave", (event) => {
      if (event.pointerType === "touch") return;
      pointedAt = false;
      letGo();
    });
    notice.addEventListener("focusin", hold);
    notice.addEventListener("focusout", () => setTimeout(letGo)); // once the focus has moved
  }

  /* ---- dialogs ------------------------------------------------------------------------ */

  const FOCUSABLE = [
    "a[href]", "button:not([disabled])", "input:not([disabled]):not([type=hidden])",
    "select:not([disabled])", "textarea:not([disabled])", "[tabindex]:not([tabindex='-1'])",
  ].join(",");

  function focusables(dialog) {
    return [...dialog.querySelectorAll(FOCUSABLE)].filter((item) => item.offsetParent !== null);
  }

  /* Keep Tab and Shift+Tab inside the dialog (showModal() already makes the page inert). */
  function trapFocus(event) {
    if (event.key !== "Tab") return;
    const items = focusables(event.currentTarget);
    if (!items.length) return;
    const first = items[0];
    const last = items[items.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  }

  /* A busy dialog (a request running) stays open when Escape is pressed. */
  function refuseCancelWhileBusy(event) {
    if (event.currentTarget.dataset.busy === "true") event.preventDefault();
  }

  function openDialog(dialog, { focus } = {}) {
    if (!dialog.dataset.enhanced) {
      dialog.addEventListener("keydown", trapFocus);
      dialog.addEventListener("cancel", refuseCancelWhileBusy);
      dialog.addEventListener("close", () => {
        const below = [...document.querySelectorAll("dialog[open]")].filter((open) => open.matches(":modal"));
        noticesInto(below.pop() || document.body);
        const opener = drawnNow(dialog._opener);
        dialog._opener = null;
        if (opener) opener.focus();
      });
      dialog.querySelectorAll("[data-close-dialog]").forEach((button) =>
        button.addEventListener("click", () => closeDialog(dialog)),
      );
      dialog.dataset.enhanced = "true";
    }
    dialog._opener = document.activeElement;
    setDialogBusy(dialog, false);
    dialog.showModal();
    noticesInto(dialog);
    const target = focus || dialog.querySelector("[autofocus]") || focusables(dialog)[0];
    if (target) target.focus();
  }

  /* A modal dialog makes the rest of the page inert: the notices move into the open dialog, so
     that their links ("Sign in again") and close buttons still work. */
  function noticesInto(parent) {
    const region = document.getElementById("notices");
    if (region && region.parentNode !== parent) parent.append(region);
  }

  function closeDialog(dialog) {
    if (dialog.dataset.busy === "true") return;
    if (dialog.open) dialog.close();
  }

  /* While busy, Escape and the close buttons leave the dialog open. */
  function setDialogBusy(dialog, busy) {
    dialog.dataset.busy = busy ? "true" : "false";
    dialog.toggleAttribute("aria-busy", busy);
    dialog.querySelectorAll("[data-close-dialog]").forEach((button) => (button.disabled = busy));
  }

  function setBusy(button, busy, busyText) {
    if (busy) {
      button.dataset.label = button.textContent;
      if (busyText) button.textContent = busyText;
      button.setAttribute("aria-busy", "true");
      button.disabled = true;
    } else {
      if (button.dataset.label) button.textContent = button.dataset.label;
      button.removeAttribute("aria-busy");
      button.disabled = false;
    }
  }

  /* ---- form errors -------------------------------------------------------------------- */

  /* A field's error box names its field (data-error-for); the controls that point to it with
     aria-describedby are marked invalid while it speaks, and the first of them takes the focus. */
  function formErrors(form) {
    const summary = form.querySelector(".form-error");
    const boxes = [...form.querySelectorAll("[data-error-for]")];
    const boxFor = (field) => boxes.find((box) => box.dataset.errorFor === field);
    const controlsOf = (box) => [...form.querySelectorAll(`[aria-describedby~="${box.id}"]`)];

    function setField(box, message) {
      box.textContent = message;
      controlsOf(box).filter((control) => control.matches("input, select, textarea")).forEach((control) => {
        if (message) control.setAttribute("aria-invalid", "true");
        else control.removeAttribute("aria-invalid");
      });
    }

    function clear() {
      summary.textContent = "";
      boxes.forEach((box) => setField(box, ""));
    }

    /* Details that name a field go beside it; the message, with any other details, goes above
       the fields when no field explains it. */
    function show(error) {
      const details = error.details && typeof error.details === "object" ? error.details : {};
      const fields = Object.keys(details).filter(boxFor);
      fields.forEach((field) => setField(boxFor(field), String(details[field] || error.message)));
      const others = Object.keys(details).filter((field) => !boxFor(field));
      if (!fields.length || others.length) {
        const extra = others.map((field) => `${field}: ${details[field]}`).join("; ");
        summary.textContent = extra ? `${error.message} (${extra})` : error.message;
      }
      const first = boxes.find((box) => fields.includes(box.dataset.errorFor)) || boxes[0];
      const [control] = first ? controlsOf(first) : [];
      if (control) (control.matches(FOCUSABLE) ? control : control.querySelector(FOCUSABLE)).focus();
    }

    // Editing a field takes its error away.
    form.addEventListener("input", (event) => {
      boxes
        .filter((box) => controlsOf(box).some((control) => control.contains(event.target)))
        .forEach((box) => setField(box, ""));
    });
    return { clear, show };
  }

  /* Run a request with its button busy and its dialog held open; returns what work() returns. */
  async function whileBusy({ button, text, dialog = null }, work) {
    setBusy(button, true, text);
    if (dialog) setDialogBusy(dialog, true);
    try {
      return await work();
    } finally {
      setBusy(button, false);
      if (dialog) setDialogBusy(dialog, false);
    }
  }

  /* ---- formatting --------------------------------------------------------------------- */

  const integer = new Intl.NumberFormat();

  const format = {
    number(value) {
      return value == null ? "–" : integer.format(Math.round(value));
    },
    bytes(value) {
      if (value == null) return "–";
      const units = ["B", "KB", "MB", "GB", "TB"];
      let size = value;
      let unit = 0;
      while (size >= 1024 && unit < units.length - 1) {
        size /= 1024;
        unit += 1;
      }
      const digits = unit === 0 || size >= 100 ? 0 : 1;
      return `${size.toFixed(digits)} ${units[unit]}`;
    },
    duration(seconds) {
      if (seconds == null || !Number.isFinite(seconds)) return "–";
      if (seconds < 0.001) return "under 1 ms";
      if (seconds < 1) return `${Math.round(seconds * 1000)} ms`; // not "0.0 s"
      if (seconds < 10) return `${seconds.toFixed(1)} s`;
      const total = Math.round(seconds);
      if (total < 60) return `${total} s`;
      const minutes = Math.floor(total / 60);
      if (minutes < 60) return `${minutes} min ${total % 60} s`;
      return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
    },
    /* "Dec 4, 2026, 7:24 PM"; with seconds ("7:24:05 PM") where times a minute apart differ. */
    dateTime(iso, { seconds = false } = {}) {
      if (!iso) return "–";
      const timeStyle = seconds ? "medium" : "short";
      return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle });
    },
  };

  function localTimes(root = document) {
    root.querySelectorAll("time[data-local]").forEach((time) => {
      time.textContent = format.dateTime(time.getAttribute("datetime"));
      time.title = time.getAttribute("datetime");
    });
  }

  document.addEventListener("DOMContentLoaded", () => localTimes());

  /* A moment the server wrote into a message, as timeutil.STAMP_IN_TEXT finds it: "2026-12-04
     19:24 UTC" (a warning), or ISO 8601 UTC. */
  const STAMP_IN_TEXT = /(\d{4}-\d{2}-\d{2})(?: (\d{2}:\d{2}) UTC\b|T([\d:.]+)Z)/g;

  function withLocalTimes(message) {
    const text = String(message || "");
    const nodes = [];
    let end = 0;
    for (const stamp of text.matchAll(STAMP_IN_TEXT)) {
      const moment = `${stamp[1]}T${stamp[2] || stamp[3]}Z`;
      const time = el("time", { className: "nowrap", dateTime: moment, title: stamp[0] }, format.dateTime(moment));
      nodes.push(text.slice(end, stamp.index), time);
      end = stamp.index + stamp[0].length;
    }
    nodes.push(text.slice(end));
    return nodes.filter((node) => node !== "");
  }

  /* ---- refreshed parts of a page ------------------------------------------------------- */

  const IDENTITY = ["id", "href", "data-action", "data-id", "data-retry", "aria-label"];

  /* Whether two controls are one, drawn twice: a control with a data-action may change its
     words (Deactivate, then Reactivate). */
  function sameControl(one, other) {
    const words = one.hasAttribute("data-action") || one.textContent.trim() === other.textContent.trim();
    return one.tagName === other.tagName && words
      && IDENTITY.every((name) => one.getAttribute(name) === other.getAttribute(name));
  }

  /* The control as the page shows it now: a list that refreshed itself while a dialog was
     open drew its buttons anew, and the one that opened the dialog takes the focus back. It is
     the one control drawn with the same identity (sameControl); another item's button of the
     same words is not it. */
  function drawnNow(control) {
    if (!control || control.isConnected) return control;
    const alike = [...document.querySelectorAll(control.tagName)].filter((node) => sameControl(node, control));
    return alike.length === 1 ? alike[0] : null;
  }

  /* A page that refreshes itself must not send a keyboard user back to its top each time. */
  function replaceKeepingFocus(part, fresh) {
    const focused = document.activeElement;
    const had = focused && focused !== part && part.contains(focused) ? focused : null;
    part.replaceWith(fresh);
    if (!had) return;
    const again = [...fresh.querySelectorAll(had.tagName)].find((node) => sameControl(node, had));
    if (again) again.focus({ preventScroll: true });
  }

  /* ---- what the account may do -------------------------------------------------------- */

  const RANKS = { viewer: 1, editor: 2, admin: 3 };

  function can(role) {
    return (RANKS[document.body.dataset.role] || 0) >= RANKS[role];
  }

  window.App = {
    api, ApiError, can, csrfToken, el, fetchPage, formErrors, notify, openDialog, closeDialog, setBusy,
    whileBusy, format, freshCsrfTokenAfter, localTimes, replaceKeepingFocus, withLocalTimes,
  };
})();

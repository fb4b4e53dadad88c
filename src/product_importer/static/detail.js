/* One import's page: its plan or change record (Changes.browser), the column mapping of a job
   that failed for want of a column, Apply / Discard for a plan, Undo (after a confirmation)
   for a completed import, Cancel (after a confirmation) for a queued or running one. While the
   job is queued or running the page fetches itself again once a second and swaps in the fresh
   part, until it has finished; while an undo of it runs, the page asks after the undo and is
   swapped once when it has ended. */
(function () {
  "use strict";

  const {
    api, closeDialog, fetchPage, localTimes, notify, openDialog, replaceKeepingFocus, setBusy, whileBusy,
  } = window.App;
  const { browser, mappingForm } = window.Changes;
  const REFRESH_MS = 1000;
  const $ = (id) => document.getElementById(id);
  // One round of refreshing at a time: an action's refreshNow() replaces the round waiting,
  // and a copy of the page asked for before another already shown is not swapped in.
  let nextRound = null;
  let asked = 0;
  let shown = 0;

  function job() {
    return JSON.parse($("job-data").textContent);
  }

  /* Fill in what the server rendered as data: the bar's width, the change list, the form. */
  function enhance() {
    const current = job();
    document.querySelectorAll(".progress-bar[data-percent]").forEach((bar) => {
      bar.style.width = `${Math.max(0, Math.min(100, Number(bar.dataset.percent)))}%`;
    });
    if ($("changes-slot")) browser($("changes-slot"), current);
    if ($("mapping-form-slot")) {
      mappingForm($("mapping-form-slot"), current, { onRetried: (next) => location.assign(`/imports/${next.id}`) });
    }
    localTimes($("import-detail"));
    closeStaleCancel();
    if ($("import-detail").dataset.active === "true") refreshLater();
    else if ($("undoing")) followUndo($("undoing").dataset.undoId);
  }

  /* While an undo of this import waits or runs, ask after that job alone (swapping the page
     in every second would reset the change record someone reads); once it has ended, show
     the page as it now is. */
  async function followUndo(undoId) {
    let undo = null;
    try {
      undo = await api("GET", `/api/imports/${undoId}`);
    } catch {
      // offline or signed out (App.api says so): the next round asks again
    }
    if (!$("undoing")) return; // the page was shown anew meanwhile
    if (undo && !["queued", "running"].includes(undo.status)) return refreshNow();
    setTimeout(() => followUndo(undoId), REFRESH_MS);
  }

  /* Fetch this page again and swap in its detail part; enhance() goes on while it runs. */
  async function refresh() {
    const round = ++asked;
    const html = await fetchPage(); // null: the next round tries again
    if (round < shown) return; // a later copy is shown already (its round goes on)
    const fresh = html && html.getElementById("import-detail");
    if (fresh) {
      shown = round;
      const focused = document.activeElement;
      const hadFocus = focused !== $("import-detail") && $("import-detail").contains(focused);
      const before = $("import-detail").dataset.status;
      replaceKeepingFocus($("import-detail"), document.importNode(fresh, true));
      announceOutcome(before);
      // the control it was on is gone (Cancel, once the job has ended): the outcome is next
      if (hadFocus && !$("import-detail").contains(document.activeElement)) focusOutcome();
      return enhance();
    }
    refreshLater();
  }

  /* Say what the import became when its status has changed (queued to running, running to
     completed...): a screen reader hears the end of an import it waits for, once, and not
     every second's refresh. */
  function announceOutcome(before) {
    if ($("import-detail").dataset.status === before) return;
    $("outcome-announcer").textContent = `${$("outcome-title").textContent.trim()}: ${$("job-badge").textContent.trim()}`;
  }

  function refreshLater() {
    clearTimeout(nextRound);
    nextRound = setTimeout(refresh, REFRESH_MS);
  }

  function focusOutcome() {
    $("outcome-title").focus();
  }

  /* The job ended by itself while its Cancel was being confirmed: nothing is left to cancel,
     and the page behind says how it ended. */
  function closeStaleCancel() {
    const dialog = $("cancel-dialog");
    if (dialog && dialog.open && !document.querySelector('[data-action="cancel"]')) closeDialog(dialog);
  }

  /* Once the Cancel dialog has closed, App gives the focus back to Cancel (drawn anew if the
     page refreshed meanwhile); when the job's end took Cancel away, the outcome takes it.
     Runs after App's own close handler. */
  function afterCancelDialog(event) {
    const dialog = event.currentTarget;
    setTimeout(() => {
      const at = document.activeElement;
      if (!at || at === document.body || dialog.contains(at)) focusOutcome();
    });
  }

  /* Cancel the job, confirmed: shown as it now is (cancelled, or stopping). A session that
     ended keeps the dialog open (App.api says to sign in again, in a new tab): pressed again
     afterwards, it goes through. */
  async function confirmCancel(event) {
    const dialog = $("cancel-dialog");
    const busy = { button: event.currentTarget, text: "Cancelling…", dialog };
    try {
      await whileBusy(busy, () => api("POST", `/api/imports/${job().id}/cancel`));
      closeDialog(dialog);
      refreshNow();
    } catch (error) {
      if (error.status === 401) return;
      closeDialog(dialog);
      notify(`Could not cancel: ${error.message}`, "error");
      // 409: it ended meanwhile (completed, failed, or cancelled from elsewhere): show how
      if (error.status === 409) refreshNow();
    }
  }

  /* Go to the new job's page, the button busy until the browser has left: pressed again
     meanwhile, it would queue a second import of the file. */
  function leaveFor(next, button, text) {
    setBusy(button, true, text);
    location.assign(`/imports/${next.id}`);
  }

  /* Run an action's request with its button busy; then show the page as it now is. */
  async function act(button, text, work, done) {
    try {
      done(await whileBusy({ button, text }, work));
    } catch (error) {
      notify(`${button.textContent.trim()} failed: ${error.message}`, "error");
      // 409: someone else applied, discarded or retried it meanwhile; show what it became
      // rather than leave buttons that can only fail again.
      if (error.status === 409) refreshNow();
    }
  }

  const ACTIONS = {
    apply(button, id) {
      act(button, "Applying…", () => api("POST", `/api/imports/${id}/apply`), () => {
        notify("The plan is being applied.", "info");
        refreshNow();
      });
    },
    discard(button, id) {
      act(button, "Discarding…", () => api("POST", `/api/imports/${id}/discard`), () => {
        notify("The plan was discarded; the catalog was not changed.", "info");
        refreshNow();
      });
    },
    retry(button, id) {
      act(button, "Retrying…", () => api("POST", `/api/imports/${id}/retry`), (next) =>
        leaveFor(next, button, "Retrying…"));
    },
    anyway(button, id) {
      const body = { max_invalid: "100%" }; // the threshold that never stops an import
      act(button, "Importing…", () => api("POST", `/api/imports/${id}/retry`, body), (next) =>
        leaveFor(next, button, "Importing…"));
    },
    undo(button) {
      // as the refreshed page counts them: opened while the import ran, the page had none
      $("undo-question").querySelector("strong").textContent = button.dataset.question;
      openDialog($("undo-dialog"), { focus: $("undo-confirm") });
    },
    cancel() {
      openDialog($("cancel-dialog"), { focus: $("cancel-confirm") });
    },
  };

  function refreshNow() {
    $("import-detail").dataset.active = "true";
    clearTimeout(nextRound);
    refresh();
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-action]");
    if (button && ACTIONS[button.dataset.action]) ACTIONS[button.dataset.action](button, job().id);
  });

  $("undo-confirm").addEventListener("click", async (event) => {
    const dialog = $("undo-dialog");
    const busy = { button: event.currentTarget, text: "Undoing…", dialog };
    try {
      const undo = await whileBusy(busy, () => api("POST", `/api/imports/${job().id}/undo`));
      closeDialog(dialog);
      location.assign(`/imports/${undo.id}`);
    } catch (error) {
      closeDialog(dialog);
      notify(`Could not undo: ${error.message}`, "error");
      // 409: undone (or being undone) from another tab meanwhile: show that, not the button
      if (error.status === 409) refreshNow();
    }
  });

  if ($("cancel-dialog")) {
    $("cancel-confirm").addEventListener("click", confirmCancel);
    $("cancel-dialog").addEventListener("close", afterCancelDialog);
  }

  enhance();
})();

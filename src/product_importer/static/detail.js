/* One import's page: its plan or change record (Changes.browser), the column mapping of a job
   that failed for want of a column, Apply / Discard for a plan, Undo (after a confirmation)
   for a completed import. While the job is queued or running the page fetches itself again
   once a second and swaps in the fresh part, until it has finished; while an undo of it runs,
   the page asks after the undo and is swapped once when it has ended. */
(function () {
  "use strict";

  const { api, closeDialog, fetchPage, localTimes, notify, openDialog, replaceKeepingFocus, whileBusy } = window.App;
  const { browser, mappingForm } = window.Changes;
  const REFRESH_MS = 1000;
  const $ = (id) => document.getElementById(id);

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
    if ($("import-detail").dataset.active === "true") setTimeout(refresh, REFRESH_MS);
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
    const html = await fetchPage(); // null: the next round tries again
    const fresh = html && html.getElementById("import-detail");
    if (fresh) {
      replaceKeepingFocus($("import-detail"), document.importNode(fresh, true));
      return enhance();
    }
    setTimeout(refresh, REFRESH_MS);
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
        location.assign(`/imports/${next.id}`));
    },
    anyway(button, id) {
      const body = { max_invalid: "100%" }; // the threshold that never stops an import
      act(button, "Importing…", () => api("POST", `/api/imports/${id}/retry`, body), (next) =>
        location.assign(`/imports/${next.id}`));
    },
    undo() {
      openDialog($("undo-dialog"), { focus: $("undo-confirm") });
    },
  };

  function refreshNow() {
    $("import-detail").dataset.active = "true";
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

  enhance();
})();

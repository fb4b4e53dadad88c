/* The import history: refresh the table while an import is queued or running, and retry
   failed or cancelled imports (the new job is then watched on the upload page). */
(function () {
  "use strict";

  const { api, fetchPage, localTimes, notify, replaceKeepingFocus, setBusy } = window.App;
  const REFRESH_MS = 2000;

  function body() {
    return document.getElementById("imports-body");
  }

  /* Fetch this page again and swap in its table body; stop once nothing is running. */
  async function refresh() {
    if (body().dataset.active !== "true") return;
    const html = await fetchPage(); // null: the next round tries again
    const fresh = html && html.getElementById("imports-body");
    if (fresh) {
      replaceKeepingFocus(body(), document.importNode(fresh, true));
      localTimes(body());
    }
    setTimeout(refresh, REFRESH_MS);
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-retry]");
    if (!button) return;
    setBusy(button, true, "Retrying…");
    try {
      const job = await api("POST", `/api/imports/${button.dataset.retry}/retry`);
      location.assign(`/?job=${job.id}`);
    } catch (error) {
      setBusy(button, false);
      notify(`Could not retry: ${error.message}`, "error");
    }
  });

  setTimeout(refresh, REFRESH_MS);
})();

/* The upload page: send a CSV with upload progress, then follow its import job live
   through the server-sent events of /api/imports/<id>/events (polling the job instead when
   the stream is refused or keeps failing). The job id is kept in the address (?job=<id>)
   so a reload, or a link from the history page, resumes watching it.

   The file goes up as a resumable (tus) upload with tus-js-client: a dropped connection is
   retried from the server's offset, and after a reload the same file picked again goes on
   from there (the library keeps the upload's fingerprint in localStorage). The import is
   asked for as soon as the upload exists, so the server reads the rows while they arrive;
   if the file's bytes fail it meanwhile, the upload stops there and is removed.
   Without the library, the file goes up as one multipart POST. A plan (the option "Plan
   first") ends `planned` and shows what applying it would change, with Apply and Discard; a job
   that failed for want of a column shows the column mapping form (changes.js). */
(function () {
  "use strict";

  const { api, can, csrfToken, el, format, freshCsrfTokenAfter, notify, whileBusy, withLocalTimes } = window.App;
  const Changes = window.Changes;
  const $ = (id) => document.getElementById(id);
  const uploadSection = $("upload-section");
  const panel = $("job-panel");
  const fileInput = $("file-input");
  const dropzone = $("dropzone");
  const maxBytes = Number(uploadSection.dataset.maxBytes);

  // [label, badge class] of each status, as imports/views.py names them for every page.
  const STATUS = JSON.parse($("status-labels").textContent);
  const PHASE = { reading: "Reading", applying: "Applying" };
  const FINISHED = ["completed", "completed_with_errors", "failed", "cancelled", "planned", "discarded"];
  const SUCCEEDED = ["completed", "completed_with_errors"];
  const ANY_INVALID = "100%"; // the threshold that never stops an import
  // Answers that refuse the file itself (too large; empty, blank or binary): sent again, it
  // would be refused again, so no Retry is offered. Others (a dropped connection, a server
  // error, an upload expired meanwhile) may go through on a second try.
  const REFUSED_FILE = [413, 422];
  const SAME_FILE_NOTE = "This file is identical to import #"; // imports/service.py's, as written
  // How a queued job's message begins while its resumable upload stands still (growing.py).
  const UPLOAD_STOPPED = "Waiting for the upload to go on";

  const state = {
    file: null, xhr: null, upload: null, jobId: null, importing: null, paused: false, samples: [],
    job: null, source: null, poll: null, uploadError: null, shown: null,
    uploadedFor: null, // the id of the import whose file this page has just sent
    sent: 0, // the bytes of the upload sent so far
    stopped: null, // { jobId, sent }: the upload this page stopped as its import failed for good
    watching: null, // the upload whose import is looked at while it goes up
    uploadTurn: 0, // which file chosen is being sent: each upload has a bar of its own
    bar: { stage: null, percent: 0 }, // what the bar shows: within a stage it never goes back
  };
  const resumable = Boolean(window.tus && window.tus.isSupported);
  const CHUNK_BYTES = 16 * 1024 * 1024; // one PATCH each
  const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000];
  const IMPORT_OF = "product-importer:import-of-upload:"; // + upload URL -> its import's id
  // Each account's unfinished uploads are its own in a browser people share: the library's
  // fingerprint of a file, which names its saved upload, begins with the account's id.
  const ACCOUNT_MARK = `account-${document.body.dataset.account}:`;

  /* ---- choosing a file (editors; a viewer's page has no drop zone) --------------------- */

  function listenForFiles() {
    fileInput.addEventListener("change", () => {
      if (fileInput.files.length) startUpload(fileInput.files[0]);
    });

    ["dragenter", "dragover"].forEach((type) =>
      dropzone.addEventListener(type, (event) => {
        event.preventDefault();
        dropzone.classList.add("dragover");
      }),
    );
    ["dragleave", "dragend", "drop"].forEach((type) =>
      dropzone.addEventListener(type, () => dropzone.classList.remove("dragover")),
    );
    dropzone.addEventListener("drop", (event) => {
      event.preventDefault();
      const files = event.dataTransfer && event.dataTransfer.files;
      if (!files || !files.length) return;
      if (files.length > 1) notify("Only the first file is imported; drop one file at a time.", "info");
      startUpload(files[0]);
    });
  }
  if (can("editor")) {
    listenForFiles();
    $("stop-on-invalid").addEventListener("change", (event) => {
      $("max-invalid").disabled = !event.target.checked;
      showOptionError("");
      if (event.target.checked) $("max-invalid").focus();
    });
    $("max-invalid").addEventListener("input", () => showOptionError(""));
  }
  // A file dropped beside the drop zone must not make the browser navigate away to it.
  ["dragover", "drop"].forEach((type) => window.addEventListener(type, (event) => event.preventDefault()));

  /* The options sent with the file (form fields, or the JSON that imports an upload): plan, and
     max_invalid as a percentage. */
  function uploadOptions() {
    const options = {};
    if ($("plan-first").checked) options.plan = "true";
    if ($("stop-on-invalid").checked) options.max_invalid = `${$("max-invalid").value.trim()}%`;
    return options;
  }

  /* Say what is wrong with the threshold beside it; true when it is fine. */
  function optionsValid() {
    const input = $("max-invalid");
    if (!$("stop-on-invalid").checked) return true;
    const value = Number(input.value.trim());
    const ok = input.value.trim() !== "" && Number.isFinite(value) && value >= 0 && value <= 100;
    showOptionError(ok ? "" : "Give a percentage from 0 to 100, such as 1 or 0.5.");
    if (!ok) input.focus();
    return ok;
  }

  function showOptionError(message) {
    $("max-invalid-error").textContent = message;
    $("max-invalid").toggleAttribute("aria-invalid", Boolean(message));
  }

  function showUploadError(message) {
    const box = $("upload-error");
    box.textContent = message;
    box.hidden = !message;
  }

  /* ---- uploading --------------------------------------------------------------------- */

  let chosen = 0; // counts the files chosen: only the last one goes on past its checks

  async function startUpload(file) {
    const turn = (chosen += 1);
    fileInput.value = "";
    showUploadError("");
    if (!optionsValid()) return;
    if (file.size > maxBytes) {
      showUploadError(
        `${file.name} is ${format.bytes(file.size)}, over the ${format.bytes(maxBytes)} limit. ` +
          "Split the file or compress it with gzip.",
      );
      return;
    }
    const binary = await looksBinary(file);
    if (turn !== chosen) return; // another file was chosen meanwhile (two quick drops)
    if (binary) {
      showUploadError(
        `${file.name} is not a CSV file (it holds binary data, as a workbook or an image does). ` +
          "Export the products as CSV (for example 'CSV UTF-8' in Excel) and upload that file.",
      );
      return;
    }
    // Only now: a file refused above leaves the note of an unfinished upload (and its
    // "Discard it") where it was.
    const note = $("resume-note");
    if (note) note.hidden = true;
    Object.assign(state, {
      file, job: null, jobId: null, importing: null, uploadError: null, samples: [], uploadedFor: null,
      sent: 0, stopped: null,
    });
    state.uploadTurn = turn; // a new upload starts its bar at 0
    showPanel();
    renderUploading(file, 0);
    if (resumable) sendResumable(file);
    else sendFile(file);
  }

  /* Whether the file's first 8 KiB hold a NUL byte, as the server's check says of a binary
     file (an .xlsx, a PNG): known at once, rather than after sending all of it. A gzip file
     is compressed binary by nature: the server looks inside it. */
  async function looksBinary(file) {
    try {
      const head = new Uint8Array(await file.slice(0, 8192).arrayBuffer());
      const gzip = head[0] === 0x1f && head[1] === 0x8b;
      return !gzip && head.includes(0);
    } catch (error) {
      return false; // unreadable here: the server says what it finds
    }
  }

  /* ---- the resumable upload ------------------------------------------------------------ */

  function sendResumable(file) {
    let sentAgain = false; // after a stale CSRF token's 403, once, as App.api does
    const upload = new window.tus.Upload(file, {
      endpoint: "/api/uploads",
      chunkSize: CHUNK_BYTES,
      retryDelays: RETRY_DELAYS,
      onBeforeRequest: withCsrfToken,
      onAfterResponse: offsetNotAnswered,
      metadata: { filename: file.name, filetype: file.type || "text/csv" },
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      fingerprint: accountFingerprint,
      onUploadUrlAvailable: () => {
        state.importing = importWhileUploading(upload);
      },
      onProgress: (sent) => {
        if (state.upload === upload) renderUploading(file, sent);
      },
      onSuccess: () => uploadDone(upload),
      onError: async (error) => {
        if (state.upload !== upload) return;
        if (!sentAgain && (await freshTokenAfterTus(error))) {
          sentAgain = true; // signed in again in another tab: go on (from the server's offset)
          if (state.upload === upload && !state.paused) upload.start();
          return;
        }
        if (state.upload !== upload) return;
        state.upload = null;
        const refused = REFUSED_FILE.includes(tusStatus(error));
        if (refused) forgetUpload(upload); // nothing of it can be sent on: not "unfinished"
        uploadFailed(tusMessage(error), !refused);
      },
    });
    state.upload = upload;
    state.paused = false;
    upload.findPreviousUploads().then(async (previous) => {
      if (!previous.length) previous = await savedBeforeAccounts(file, upload.options);
      if (state.upload !== upload) return;
      if (previous.length) {
        upload.resumeFromPreviousUpload(previous[0]);
        // The speed counts from the server's offset, not from 0: the bytes sent before the
        // reload were not sent now.
        state.samples = [];
      }
      upload.start();
    });
  }

  /* The library's fingerprint of the file, marked with the signed-in account's id. */
  async function accountFingerprint(file, options) {
    return ACCOUNT_MARK + (await window.tus.defaultOptions.fingerprint(file, options));
  }

  /* The uploads saved in this browser by the signed-in account (another's are not its), and
     those saved before uploads were kept per account, which went on whoever chose them. */
  async function savedUploads() {
    const stored = await window.tus.defaultOptions.urlStorage.findAllUploads().catch(() => []);
    const mine = (key) => key.startsWith(`tus::${ACCOUNT_MARK}`) || !key.startsWith("tus::account-");
    return stored.filter((entry) => mine(entry.urlStorageKey));
  }

  /* The saved uploads of this file from before uploads were kept per account: an upgrade
     must not send an unfinished one back to byte 0, its import waiting a day for it. */
  async function savedBeforeAccounts(file, options) {
    const storage = window.tus.defaultOptions.urlStorage;
    const fingerprint = await window.tus.defaultOptions.fingerprint(file, options);
    return storage.findUploadsByFingerprint(fingerprint).catch(() => []);
  }

  /* Drop the saved resume of an upload the server refused (its file too large, empty or
     binary), so that the next visit does not offer to go on with it. */
  async function forgetUpload(upload) {
    const storage = window.tus.defaultOptions.urlStorage;
    const saved = await savedUploads(); // one resumed from the last release's key too
    await Promise.all(saved.filter((entry) => entry.uploadUrl === upload.url)
      .map((entry) => storage.removeUpload(entry.urlStorageKey)));
    if (upload.url) localStorage.removeItem(IMPORT_OF + upload.url);
  }

  /* Each tus request carries the page's token as it is when sent: a fresh one fetched after
     signing in again in another tab (by this upload or any other request of the page). */
  function withCsrfToken(request) {
    request.setHeader("X-CSRFToken", csrfToken());
  }

  /* A HEAD (the offset asked, to resume) answered 5xx: the server is there but cannot say it
     for a moment (the database away, a web server restarting behind its proxy). Thrown, it is
     a failure the upload retries at the same address; returned, tus-js-client drops the
     address and starts a new upload from byte 0, leaving the first import waiting a day. */
  function offsetNotAnswered(request, response) {
    if (request.getMethod() === "HEAD" && response.getStatus() >= 500) {
      throw new Error(`the offset was not answered (${response.getStatus()})`);
    }
  }

  /* Whether a tus request failed on a stale CSRF token and the page now holds a fresh one. */
  async function freshTokenAfterTus(error) {
    const response = error && error.originalResponse;
    if (!response) return false;
    return freshCsrfTokenAfter(response.getStatus(), parseJson(response.getBody()));
  }

  /* Remove an upload from the server (once more with a fresh token if the page's was stale). */
  async function terminate(url) {
    const options = { onBeforeRequest: withCsrfToken };
    try {
      await window.tus.Upload.terminate(url, options);
    } catch (error) {
      if (!(await freshTokenAfterTus(error))) throw error;
      await window.tus.Upload.terminate(url, options);
    }
  }

  /* Ask for the import as soon as the upload exists; resolve to its id (null if refused). */
  async function importWhileUploading(upload) {
    const known = localStorage.getItem(IMPORT_OF + upload.url);
    if (known) {
      watchWhileUploading(upload, known);
      return (state.jobId = known); // resumed: its import already follows it
    }
    try {
      const options = uploadOptions();
      if (options.plan) options.plan = true; // JSON, not a form field
      const body = { upload: upload.url.split("/").pop(), ...options };
      const job = await api("POST", "/api/imports", body);
      localStorage.setItem(IMPORT_OF + upload.url, String(job.id));
      if (state.upload === upload) state.jobId = String(job.id);
      watchWhileUploading(upload, String(job.id));
      return String(job.id);
    } catch (error) {
      if (state.upload !== upload) return null;
      state.upload = null;
      upload.abort(true).catch(() => {});
      uploadFailed(error.message, error.status >= 500);
      return null;
    }
  }

  /* While the file goes up, look at its import once a second. One that failed on the file's
     bytes (binary data, a line too long, a damaged gzip...) would fail the same way whatever
     the rest holds: the upload stops at once, rather than sending the whole file to show the
     failure at its end. One that a column mapping can fix (a column missing) lets it go on:
     the mapping's retry reads the whole file, which is then not uploaded again. */
  function watchWhileUploading(upload, jobId) {
    if (state.watching === upload) return; // the upload started again (a fresh CSRF token)
    state.watching = upload;
    const look = async () => {
      if (state.upload !== upload) return;
      let job;
      try {
        job = await api("GET", `/api/imports/${jobId}`);
      } catch (error) {
        if (error.status && error.status < 500) return; // not this page's to follow
        job = null; // the server could not be reached: looked at again
      }
      if (state.upload !== upload) return;
      if (job && FINISHED.includes(job.status)) {
        if (failedForGood(job)) stopUpload(upload, job);
        return;
      }
      setTimeout(look, 1000);
    };
    setTimeout(look, 1000);
  }

  /* Whether no retry or mapping of the job could end otherwise, whatever bytes follow: the
     server says why in `retry_refusal` (a file its bytes failed, whatever its `error_code`). */
  function failedForGood(job) {
    return job.status === "failed" && Boolean(job.retry_refusal);
  }

  /* Stop the upload of an import that failed for good and remove it (as Cancel does): the
     page shows the failure and what to do. */
  function stopUpload(upload, job) {
    state.upload = null;
    state.stopped = { jobId: String(job.id), sent: state.sent };
    upload.abort(true).catch(() => {}); // the DELETE: nothing of it is left to resume
    if (upload.url) localStorage.removeItem(IMPORT_OF + upload.url);
    history.replaceState(null, "", `?job=${job.id}`);
    renderJob(job);
  }

  async function uploadDone(upload) {
    if (state.upload !== upload) return;
    const jobId = (await state.importing) || localStorage.getItem(IMPORT_OF + upload.url);
    if (state.upload !== upload) return; // the import was refused: the page says why
    state.upload = null;
    localStorage.removeItem(IMPORT_OF + upload.url);
    if (!jobId) return uploadFailed("The upload finished but its import could not be started.", true);
    state.uploadedFor = String(jobId);
    resume(jobId); // through a dropped connection too: the import runs on the server
  }

  /* The status of the server's answer that ended a tus upload; 0 when none came. */
  function tusStatus(error) {
    return error.originalResponse ? error.originalResponse.getStatus() : 0;
  }

  function tusMessage(error) {
    const response = error.originalResponse;
    const body = response ? parseJson(response.getBody()) : null;
    if (body && body.error) return body.error.message;
    return "The upload stopped: the server could not be reached. Retry to go on from where it stopped.";
  }

  function pauseUpload() {
    if (!state.upload || state.paused) return;
    state.paused = true;
    state.upload.abort(); // keeps the upload on the server: Resume goes on from its offset
    renderUploading(state.file, lastSent());
  }

  function resumeUpload() {
    if (!state.upload || !state.paused) return;
    state.paused = false;
    state.samples = [];
    state.upload.start();
    renderUploading(state.file, lastSent());
  }

  function lastSent() {
    const last = state.samples[state.samples.length - 1];
    return last ? last[1] : 0;
  }

  /* Bytes per second over the last few seconds: a resumed or throttled upload's speed now. */
  function uploadRate(loaded) {
    const now = performance.now();
    state.samples.push([now, loaded]);
    while (state.samples.length > 2 && now - state.samples[0][0] > 5000) state.samples.shift();
    const [then, before] = state.samples[0];
    return now - then > 500 ? ((loaded - before) * 1000) / (now - then) : null;
  }

  /* An upload left unfinished by a reload or a closed tab: say how to go on with it. */
  async function noteUnfinishedUploads() {
    if (!resumable || !can("editor")) return;
    const stored = await savedUploads();
    const note = $("resume-note");
    if (!note || !stored.length) return;
    const names = stored.map((entry) => {
      const name = (entry.metadata && entry.metadata.filename) || "a file";
      return `${name} (${format.bytes(entry.size)})`;
    });
    note.querySelector(".alert-text").textContent =
      `The upload of ${names.join(", ")} did not finish. Choose the same file again: it goes ` +
      "on from where it stopped, or discard it.";
    $("discard-unfinished").textContent = stored.length === 1 ? "Discard it" : "Discard them";
    note.hidden = false;
  }

  /* Give up the unfinished uploads: their imports, which wait for their bytes (and count
     against the account's queued imports), are cancelled, and the uploads removed. */
  async function discardUnfinished(event) {
    const storage = window.tus.defaultOptions.urlStorage;
    const stored = await savedUploads();
    const busy = { button: event.currentTarget, text: "Discarding…" };
    await whileBusy(busy, () => Promise.all(stored.map(async (entry) => {
      const jobId = localStorage.getItem(IMPORT_OF + entry.uploadUrl);
      if (jobId) await api("POST", `/api/imports/${jobId}/cancel`).catch(() => {});
      await terminate(entry.uploadUrl).catch(() => {});
      await storage.removeUpload(entry.urlStorageKey);
      localStorage.removeItem(IMPORT_OF + entry.uploadUrl);
    })));
    $("resume-note").hidden = true;
    notify(stored.length === 1 ? "The unfinished upload was discarded." : "The unfinished uploads were discarded.", "info");
    fileInput.focus();
  }

  /* The file as one multipart POST; sent once more after a stale CSRF token's 403, as App.api
     does (the check runs before the view: nothing was stored). */
  function sendFile(file, sentAgain = false) {
    const xhr = new XMLHttpRequest();
    state.xhr = xhr;
    xhr.open("POST", "/api/imports");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.upload.addEventListener("progress", (event) => {
      if (state.xhr === xhr) renderUploading(file, event.loaded);
    });
    xhr.addEventListener("load", async () => {
      state.xhr = null;
      const body = parseJson(xhr.responseText);
      if (!sentAgain && (await freshCsrfTokenAfter(xhr.status, body))) {
        if (state.file === file) sendFile(file, true);
        return;
      }
      if (xhr.status === 202 && body) {
        state.uploadedFor = String(body.id);
        return jobStarted(body);
      }
      const error = body && body.error;
      uploadFailed(error ? error.message : `The server answered ${xhr.status}.`, xhr.status >= 500);
    });
    xhr.addEventListener("error", () => {
      state.xhr = null;
      uploadFailed("The upload was interrupted: the server could not be reached.", true);
    });
    xhr.addEventListener("abort", () => {
      state.xhr = null;
      reset();
      notify("Upload cancelled.", "info");
    });
    const form = new FormData();
    Object.entries(uploadOptions()).forEach(([name, value]) => form.append(name, value));
    form.append("file", file, file.name);
    xhr.send(form);
  }

  function parseJson(text) {
    try {
      return JSON.parse(text);
    } catch (error) {
      return null;
    }
  }

  function renderUploading(file, loaded) {
    $("upload-done").hidden = true;
    const total = file.size || 1;
    const percent = Math.min(100, (loaded / total) * 100);
    state.sent = loaded;
    const rate = state.paused ? null : uploadRate(loaded);
    const detail = [`${format.bytes(loaded)} of ${format.bytes(file.size)} sent`];
    if (rate) detail.push(`${format.bytes(rate)}/s`);
    if (rate && loaded < total) detail.push(`about ${format.duration((total - loaded) / rate)} left`);
    if (loaded >= total) detail.push("waiting for the server to store the file");
    renderHead(file.name, `${format.bytes(file.size)}`, state.paused ? "paused" : "uploading");
    let message = state.paused ? "Upload paused" : "Uploading…";
    if (loaded >= total) message = "Upload complete, starting the import…";
    renderProgress(message, percent, state.paused ? "" : "active", "upload");
    const detailEl = $("job-detail");
    detailEl.textContent = detail.join(" · ");
    detailEl.dataset.sent = String(loaded);
    $("job-stats").hidden = true;
    renderResult(null);
    const canPause = Boolean(state.upload) && loaded < total;
    showActions({ cancel: true, pause: canPause && !state.paused, resume: canPause && state.paused });
  }

  function uploadFailed(message, canRetry) {
    state.uploadError = message;
    renderHead(state.file.name, format.bytes(state.file.size), "upload_failed");
    renderProgress("Upload failed", 0, "none");
    $("job-detail").textContent = "";
    // one that may go through when sent again (a server restarting, its database away) is no
    // fault of the file's
    const title = canRetry ? "The upload did not go through" : "The file was not accepted";
    renderResult(alertBox("error", title, message));
    showActions({ retry: canRetry, another: true });
  }

  /* ---- following the import job ------------------------------------------------------- */

  function jobStarted(job) {
    history.replaceState(null, "", `?job=${job.id}`);
    renderJob(job);
    watch(job.id);
  }

  function watch(jobId) {
    stopWatching();
    if (!window.EventSource) return poll(jobId);
    const source = new EventSource(`/api/imports/${jobId}/events`);
    let opened = false;
    state.source = source;
    source.addEventListener("open", () => (opened = true));
    source.addEventListener("progress", (event) => renderJob(JSON.parse(event.data)));
    source.addEventListener("done", (event) => {
      stopWatching();
      renderJob(JSON.parse(event.data));
    });
    // The server ends each stream after a few minutes and the browser opens a new one. A
    // refused stream (503: too many open) is closed for good, and one that fails before it
    // opens may never open: then ask for the job once a second, which always works.
    source.addEventListener("error", () => {
      if (state.source !== source) return;
      if (source.readyState === EventSource.CLOSED || !opened) return poll(jobId);
      opened = false; // the browser is reconnecting: a failure before it reopens ends it
    });
  }

  /* Ask for the job once a second until it has finished (or, with `thenWatch`, until it is
     known, then follow its events). A lost connection or a server error is tried again;
     only an answer about the job itself (404, 403) ends it. */
  function poll(jobId, { thenWatch = false } = {}) {
    stopWatching();
    const tick = async () => {
      try {
        const job = await api("GET", `/api/imports/${jobId}`);
        renderJob(job);
        if (FINISHED.includes(job.status)) return;
        if (thenWatch) return watch(job.id);
      } catch (error) {
        if (error.status && error.status < 500) return renderMissing(error);
        $("job-detail").textContent = error.status
          ? `The server answered ${error.status}: trying again every second…`
          : "The connection was lost: trying again every second…";
      }
      state.poll = setTimeout(tick, 1000);
    };
    tick();
  }

  function stopWatching() {
    if (state.source) state.source.close();
    clearTimeout(state.poll);
    state.source = null;
    state.poll = null;
  }

  function renderJob(job) {
    state.job = job;
    const finished = FINISHED.includes(job.status);
    renderHead(job.filename, `${format.bytes(job.bytes_total)} · import #${job.id}`, job.status);
    renderProgress(job.message, job.percent, barState(job.status), `import:${job.id}`);
    renderUploaded(job);
    $("job-detail").textContent = jobDetail(job);
    renderStats(job, finished);
    renderResult(finished ? resultBox(job) : null);
    renderSections(job);
    showActions({
      cancel: !finished,
      retry: retryable(job),
      anyway: stoppedByThreshold(job) && !job.retry_refusal,
      apply: job.status === "planned",
      discard: job.status === "planned",
      products: SUCCEEDED.includes(job.status),
      errors: finished && job.rows_invalid > 0,
      details: finished,
      another: finished,
      chooseAgain: job.status === "queued" && job.message.startsWith(UPLOAD_STOPPED),
    });
    $("errors-link").href = `/api/imports/${job.id}/rejected.csv?bom=true`; // for Excel
    $("details-link").href = `/imports/${job.id}`;
  }

  /* Whether retrying the job as it was could end otherwise (imports/views.py says the same):
     a file that lacked a column is mapped instead, and one whose rows made it fail (too many
     invalid, none valid) would fail the same way again. */
  function retryable(job) {
    // the file never arrived whole, was refused or removed, or its bytes failed it
    if (job.retry_refusal) return false;
    if (job.status === "cancelled") return true;
    return job.status === "failed" && !job.header && !job.rows_invalid && !job.error_code;
  }

  /* Whether the job's invalid-row limit stopped it, as the job says: it can go on without
     the limit. */
  function stoppedByThreshold(job) {
    return job.error_code === "too_many_invalid";
  }

  /* The plan's changes, or the mapping form: built once per job and status. */
  function renderSections(job) {
    const key = `${job.id}:${job.status}`;
    if (state.shown === key) return;
    state.shown = key;
    const planned = job.status === "planned";
    // a header of no names (the file held none) has nothing to map: upload the file again
    const mapping = job.status === "failed" && Boolean(job.header && job.header.length) && can("editor");
    $("job-plan").hidden = !planned;
    $("job-mapping").hidden = !mapping;
    if (planned) Changes.browser($("job-plan-slot"), job);
    else $("job-plan-slot").replaceChildren();
    if (mapping) Changes.mappingForm($("job-mapping-slot"), job, { onRetried: jobStarted });
    else $("job-mapping-slot").replaceChildren();
  }

  function renderMissing(error) {
    stopWatching();
    showPanel();
    const title = error.status === 404 ? "This import does not exist" : "The import could not be loaded";
    renderHead(title, "", null); // no import ran: no status to show
    renderProgress("", 0, "none");
    renderResult(alertBox("error", title, error.message));
    renderSections({ id: null, status: "missing" });
    showActions({ another: true, history: true }); // a viewer too has somewhere to go
  }

  function barState(status) {
    if (SUCCEEDED.includes(status)) return "success";
    if (status === "failed") return "danger";
    if (status === "cancelled" || status === "discarded") return "muted";
    return status === "running" ? "active" : ""; // a plan too: its apply goes on from there
  }

  function jobDetail(job) {
    if (job.status === "queued" && job.message.startsWith(UPLOAD_STOPPED)) {
      return "Its upload has stopped: choose the same file again in the browser that sent it to " +
        "go on from where it stopped, or cancel the import.";
    }
    if (job.status === "queued") return "Waiting for a worker and for earlier imports to finish.";
    const stopped = state.stopped && state.stopped.jobId === String(job.id) && state.file;
    if (stopped && job.status === "failed") {
      return `The upload was stopped after ${format.bytes(state.stopped.sent)} of ` +
        `${format.bytes(state.file.size)}: the rest of the file could not change this.`;
    }
    if (job.status === "running") {
      return `${format.bytes(job.bytes_processed)} of ${format.bytes(job.bytes_total)} read`;
    }
    const seconds = elapsed(job);
    if (seconds == null) return "";
    if (job.status === "planned") {
      return `Read and compared in ${format.duration(seconds)}; applying it does the rest`;
    }
    return `Finished in ${format.duration(seconds)}`;
  }

  function elapsed(job) {
    // a discarded plan ended when it was discarded, perhaps a day after its reading: that wait
    // is no duration of it (nor a speed)
    if (!job.started_at || job.status === "discarded") return null;
    const end = job.finished_at ? Date.parse(job.finished_at) : Date.now();
    return (end - Date.parse(job.started_at)) / 1000;
  }

  function renderStats(job, finished) {
    const stopped = job.status === "failed" || job.status === "cancelled";
    $("job-stats").hidden = stopped && !job.rows_processed; // nothing was read: zeros say nothing
    const seconds = elapsed(job);
    let phase = finished ? "Finished" : PHASE[job.phase] || STATUS[job.status][0];
    if (job.status === "planned") phase = "Planned: not applied"; // the bar stops short of 100
    $("stat-phase").textContent = phase;
    $("stat-rows").textContent = format.number(job.rows_processed);
    let speed = job.rows_per_second;
    if (finished) speed = seconds > 0 && job.rows_processed ? job.rows_processed / seconds : null;
    const unknown = finished ? "–" : "Not known yet"; // not measured yet, rather than a stale 0
    $("stat-speed").textContent = speed ? `${format.number(speed)} rows/s` : unknown;
    $("stat-eta-label").textContent = finished ? "Duration" : "Time left";
    const left = finished ? seconds : job.eta_seconds;
    $("stat-eta").textContent = left == null ? unknown : format.duration(left);
    const planned = job.status === "planned"; // counts of what applying would do
    $("stat-created-label").textContent = planned ? "To create" : "Created";
    $("stat-updated-label").textContent = planned ? "To update" : "Updated";
    // The merge counts products only as it ends: until then they are not known, not zero. A
    // discarded plan's are what it would have done: it created and updated nothing.
    const discarded = job.status === "discarded";
    for (const name of ["created", "updated", "unchanged"]) {
      $(`stat-${name}`).textContent = finished && !discarded ? format.number(job[name]) : "–";
      $(`stat-${name}`).title = discarded
        ? "The plan was discarded: nothing was applied"
        : finished ? "" : "Known once the import is applied";
    }
    $("stat-invalid").textContent = format.number(job.rows_invalid);
  }

  function resultBox(job) {
    const box = el("div", { className: "stack" });
    if (job.status === "planned") {
      box.append(alertBox("info", "Plan ready: the catalog has not changed yet", planSummary(job)));
    } else if (job.status === "discarded") {
      box.append(alertBox("info", "Plan discarded", "The catalog was not changed."));
    } else if (job.status === "failed") {
      box.append(alertBox("error", "Nothing was imported", job.error));
    } else if (job.status === "cancelled") {
      box.append(alertBox("info", "Nothing was imported", job.error || "The import was cancelled."));
    } else {
      const total = job.created + job.updated + job.unchanged;
      const title = total === 1 ? "1 product imported" : `${format.number(total)} products imported`;
      let summary =
        `${format.number(job.created)} created, ${format.number(job.updated)} updated, ` +
        `${format.number(job.unchanged)} unchanged.`;
      if (job.rows_superseded > 0) summary += ` ${supersededNote(job.rows_superseded)}`;
      box.append(alertBox("success", title, summary));
      if (job.rows_invalid > 0) {
        const rows = job.rows_invalid === 1 ? "1 row was" : `${format.number(job.rows_invalid)} rows were`;
        box.append(alertBox("warning", `${rows} rejected`,
          "Download them: each keeps every column of your file, with its line and the reason. " +
            "Fix those cells and import that file as it is (the line and reason columns are ignored)."));
      }
    }
    if (job.warnings && job.warnings.length) box.append(warningList(job.warnings, job.duplicate_of));
    return box;
  }

  /* The words of the job's `summary` (imports/models.py) about rows that repeat a SKU. */
  function supersededNote(rows) {
    const repeated = rows === 1 ? "1 row repeated" : `${format.number(rows)} rows repeated`;
    return `${repeated} an earlier SKU; the last one was kept.`;
  }

  function planSummary(job) {
    const plural = (count, word) => `${format.number(count)} ${word}${count === 1 ? "" : "s"}`;
    let text =
      `Applying it now would create ${plural(job.created, "product")}, update ` +
      `${format.number(job.updated)} and leave ${format.number(job.unchanged)} unchanged`;
    if (job.rows_invalid > 0) text += `; ${plural(job.rows_invalid, "row")} would be rejected`;
    if (job.rows_superseded > 0) text += `. ${supersededNote(job.rows_superseded).slice(0, -1)}`;
    const next = can("editor")
      ? "Review the changes below, then apply or discard it."
      : "Review the changes below; an editor or admin can apply or discard it."; // a viewer cannot
    return `${text}. ${next}`;
  }

  /* The warnings; when the file is one imported before, a link to that import. */
  function warningList(warnings, duplicateOf) {
    const box = alertBox("warning", warnings.length === 1 ? "Warning" : "Warnings", null);
    // the earlier import's moment in the reader's zone; other warnings quote the file as written
    const items = warnings.map((text) => el("li", {}, ...(text.startsWith(SAME_FILE_NOTE) ? withLocalTimes(text) : [text])));
    box.append(el("ul", { className: "warnings" }, ...items));
    if (duplicateOf) {
      box.append(el("p", { className: "alert-text" },
        el("a", { href: `/imports/${duplicateOf}` }, `See import #${duplicateOf}`)));
    }
    return box;
  }

  function alertBox(kind, title, text) {
    const box = el(
      "div",
      { className: `alert alert-${kind}` },
      el("p", { className: "alert-title" }, title),
      text ? el("p", { className: "alert-text" }, text) : null,
    );
    if (kind === "error") box.setAttribute("role", "alert");
    return box;
  }

  /* ---- shared rendering --------------------------------------------------------------- */

  function showPanel() {
    // A keyboard user who chose the file was in the section hidden now: the focus goes on to
    // the panel (Tab then reaches its buttons), not lost to the top of the page.
    const wasInSection = uploadSection.contains(document.activeElement);
    uploadSection.hidden = true;
    panel.hidden = false;
    if (wasInSection) panel.focus();
  }

  function renderHead(name, meta, status) {
    $("job-file").textContent = name;
    $("job-meta").textContent = meta;
    const [label, badgeClass] = STATUS[status] || [status, "badge-muted"];
    const badge = $("job-badge");
    badge.textContent = label;
    badge.className = `badge ${badgeClass}`;
    badge.hidden = !status;
  }

  /* The bar of one stage: the upload (bytes sent) or an import (its phases, as the job says).
     Each stage starts its own bar; within one, a reading older than the one shown (a poll
     answered after an event) never moves it back. */
  function renderProgress(message, percent, barStateName, stage = null) {
    $("job-progress-line").hidden = barStateName === "none";
    let value = Math.max(0, Math.min(100, percent || 0));
    const uploading = stage === "upload";
    const fill = $("job-progress-bar");
    if (stage) {
      const key = uploading ? `upload:${state.uploadTurn}` : stage;
      if (state.bar.stage === key) value = Math.max(value, state.bar.percent);
      else fill.style.transition = "none"; // a new bar starts where it is, not sliding back to it
      state.bar = { stage: key, percent: value };
      $("job-stage").textContent = uploading ? "Upload" : "Import";
    }
    const shown = value >= 100 || value === 0 ? String(Math.round(value)) : value.toFixed(1);
    const messageEl = $("job-message");
    if (messageEl.textContent !== message) messageEl.textContent = message; // re-announce changes only
    $("job-percent").textContent = `${shown}%`;
    fill.style.width = `${value}%`;
    if (fill.style.transition) {
      void fill.offsetWidth; // the new width is laid out before the transition comes back
      fill.style.transition = "";
    }
    const bar = $("job-progress");
    bar.setAttribute("aria-valuenow", String(Math.round(value)));
    bar.dataset.state = barStateName;
  }

  /* The upload's own line, once its bytes are all on the server: the import's bar that
     follows measures the import alone (it read the rows as they arrived). */
  function renderUploaded(job) {
    const line = $("upload-done");
    line.hidden = !(state.file && state.uploadedFor === String(job.id));
    if (!line.hidden) $("upload-done-text").textContent = `Uploaded ${format.bytes(state.file.size)}`;
  }

  function renderResult(node) {
    const result = $("job-result");
    result.replaceChildren(...(node ? [node] : []));
    result.hidden = !node;
  }

  function showActions(visible) {
    const hadFocus = document.activeElement;
    const editor = can("editor"); // a viewer follows an import but cannot change it
    $("cancel-button").hidden = !(visible.cancel && editor);
    $("apply-button").hidden = !(visible.apply && editor);
    $("discard-button").hidden = !(visible.discard && editor);
    $("details-link").hidden = !visible.details;
    $("history-link").hidden = !visible.history;
    $("retry-button").hidden = !(visible.retry && editor);
    $("anyway-button").hidden = !(visible.anyway && editor);
    $("products-link").hidden = !visible.products;
    $("errors-link").hidden = !visible.errors;
    $("another-button").hidden = !(visible.another && editor);
    $("choose-again-button").hidden = !(visible.chooseAgain && editor);
    $("pause-button").hidden = !(visible.pause && editor);
    $("resume-button").hidden = !(visible.resume && editor);
    // Keep keyboard users in place when the button they used disappears.
    if (hadFocus && panel.contains(hadFocus) && hadFocus.hidden) {
      const next = panel.querySelector(".job-actions > :not([hidden])");
      if (next) next.focus();
    }
  }

  function reset() {
    stopWatching();
    Object.assign(state, {
      file: null, xhr: null, upload: null, jobId: null, job: null, uploadError: null, shown: null,
      uploadedFor: null, stopped: null,
    });
    renderSections({ id: null, status: "none" });
    history.replaceState(null, "", location.pathname);
    panel.hidden = true;
    uploadSection.hidden = false;
    fileInput.focus();
    noteUnfinishedUploads();
  }

  /* ---- buttons ------------------------------------------------------------------------ */

  $("cancel-button").addEventListener("click", async (event) => {
    if (state.xhr) return state.xhr.abort();
    if (state.upload) return cancelUpload();
    if (!state.job) return;
    const busy = { button: event.currentTarget, text: "Cancelling…" };
    try {
      renderJob(await whileBusy(busy, () => api("POST", `/api/imports/${state.job.id}/cancel`)));
    } catch (error) {
      // 409: it finished meanwhile; the event stream brings the final state.
      if (error.status !== 409) notify(`Could not cancel: ${error.message}`, "error");
    }
  });

  $("retry-button").addEventListener("click", async (event) => {
    if (state.uploadError && state.file) return startUpload(state.file);
    if (!state.job) return;
    const busy = { button: event.currentTarget, text: "Retrying…" };
    try {
      jobStarted(await whileBusy(busy, () => api("POST", `/api/imports/${state.job.id}/retry`)));
    } catch (error) {
      notify(`Could not retry: ${error.message}`, "error");
    }
  });

  $("anyway-button").addEventListener("click", async (event) => {
    if (!state.job) return;
    const busy = { button: event.currentTarget, text: "Importing…" };
    const url = `/api/imports/${state.job.id}/retry`;
    try {
      jobStarted(await whileBusy(busy, () => api("POST", url, { max_invalid: ANY_INVALID })));
    } catch (error) {
      notify(`Could not import the file again: ${error.message}`, "error");
    }
  });

  $("apply-button").addEventListener("click", async (event) => {
    if (!state.job) return;
    const busy = { button: event.currentTarget, text: "Applying…" };
    try {
      jobStarted(await whileBusy(busy, () => api("POST", `/api/imports/${state.job.id}/apply`)));
    } catch (error) {
      notify(`Could not apply the plan: ${error.message}`, "error");
      if (error.status === 409) resume(state.job.id); // changed elsewhere: show it as it is
    }
  });

  $("discard-button").addEventListener("click", async (event) => {
    if (!state.job) return;
    const busy = { button: event.currentTarget, text: "Discarding…" };
    try {
      renderJob(await whileBusy(busy, () => api("POST", `/api/imports/${state.job.id}/discard`)));
      notify("The plan was discarded; the catalog was not changed.", "info");
    } catch (error) {
      notify(`Could not discard the plan: ${error.message}`, "error");
      if (error.status === 409) resume(state.job.id); // changed elsewhere: show it as it is
    }
  });

  $("another-button").addEventListener("click", reset);
  // Back to the drop zone, which says which upload did not finish; the import waits for it.
  $("choose-again-button").addEventListener("click", reset);
  if ($("discard-unfinished")) $("discard-unfinished").addEventListener("click", discardUnfinished);
  $("pause-button").addEventListener("click", pauseUpload);
  $("resume-button").addEventListener("click", resumeUpload);

  /* Cancel an upload: its import (which follows it) is cancelled, the upload removed. */
  async function cancelUpload() {
    const upload = state.upload;
    const jobId = state.jobId;
    state.upload = null;
    if (jobId) await api("POST", `/api/imports/${jobId}/cancel`).catch(() => {});
    await upload.abort(true).catch(() => {});
    if (upload.url) localStorage.removeItem(IMPORT_OF + upload.url);
    reset();
    notify("Upload cancelled.", "info");
  }

  window.addEventListener("beforeunload", (event) => {
    if (state.xhr) event.preventDefault(); // leaving now would abort the upload
  });

  /* ---- resume watching a job named in the address ------------------------------------- */

  function resume(jobId) {
    showPanel();
    history.replaceState(null, "", `?job=${jobId}`);
    // after an upload, or an action on the job shown, its name stays while it loads
    const shown = state.file || (state.job && String(state.job.id) === String(jobId));
    if (!shown) {
      renderHead("", `import #${jobId}`, "queued");
      renderProgress("Loading…", 0, "", `import:${jobId}`);
      $("job-detail").textContent = "";
    }
    poll(jobId, { thenWatch: true });
  }

  const jobId = new URLSearchParams(location.search).get("job");
  if (jobId && /^\d+$/.test(jobId)) resume(jobId);
  else noteUnfinishedUploads();
})();

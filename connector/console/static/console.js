// calsync console: small enhancements over pages that work without JavaScript.
"use strict";

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

// Search as you type: fetch the same page and swap the results in place.
function liveSearch(form) {
  const results = document.getElementById("results");
  if (!results) return;
  let latest = 0;
  const run = debounce(async () => {
    const url = form.action + "?" + new URLSearchParams(new FormData(form)).toString();
    const mine = ++latest;
    const answer = await fetch(url, { credentials: "same-origin" });
    if (mine !== latest || !answer.ok) return;
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    const fresh = page.getElementById("results");
    if (fresh) { results.replaceWith(fresh); history.replaceState(null, "", url); }
  }, 250);
  form.addEventListener("input", run);
}

// The slot picker: a day's free times from Cal.com, fetched when the date or type changes.
function slotPicker(form) {
  const box = form.querySelector("[data-slots]");
  const date = form.querySelector("input[name=date]");
  const type = form.querySelector("select[name=event_type_id]");
  const button = form.querySelector("[data-slots-button]");
  if (!box || !date || !type) return;
  if (button) button.hidden = true;
  const legend = box.querySelector("legend");
  const load = async () => {
    if (!date.value) return;
    const chosen = box.querySelector("input[name=start_time]:checked, input[type=hidden][name=start_time]");
    const params = new URLSearchParams({ date: date.value, event_type_id: type.value,
                                         chosen: chosen ? chosen.value : "" });
    box.setAttribute("aria-busy", "true");
    box.replaceChildren(legend, Object.assign(document.createElement("p"),
      { className: "hint", textContent: "Loading free times…" }));
    try {
      const answer = await fetch("/console/slots?" + params, { credentials: "same-origin" });
      const page = new DOMParser().parseFromString(await answer.text(), "text/html");
      const content = page.querySelector("main") || page.body;
      box.replaceChildren(legend, ...Array.from(content.childNodes).filter((n) => n.nodeType === 1 && !n.matches("p.notice")));
    } catch (error) {
      box.replaceChildren(legend, Object.assign(document.createElement("p"),
        { className: "error", textContent: "Could not load free times: try again." }));
    } finally {
      box.removeAttribute("aria-busy");
    }
  };
  date.addEventListener("change", load);
  type.addEventListener("change", load);
}

// Dialogs: open as modals, keep what was typed when closed, give focus back to the opener.
function dialogs() {
  document.querySelectorAll("[data-dialog-open]").forEach((opener) => {
    const dialog = document.getElementById("dialog-" + opener.dataset.dialogOpen);
    if (!dialog) return;
    opener.addEventListener("click", (event) => {
      event.preventDefault();
      dialog.showModal();
      const field = dialog.querySelector("input:not([type=hidden]), textarea");
      if (field) field.focus();
      dialog.addEventListener("close", () => opener.focus(), { once: true });
    });
  });
  document.querySelectorAll("dialog").forEach((dialog) => {
    dialog.querySelectorAll("[data-dialog-close]").forEach((closer) =>
      closer.addEventListener("click", (event) => { event.preventDefault(); dialog.close(); }));
    if (dialog.hasAttribute("open")) { dialog.close(); dialog.showModal(); }
    const offset = dialog.querySelector("[data-local-offset]");
    const local = dialog.querySelector("input[type=datetime-local]");
    if (offset && local) {
      dialog.querySelector("form").addEventListener("submit", () => {
        const when = new Date(local.value);
        if (!isNaN(when)) offset.value = String(when.getTimezoneOffset());
      });
    }
  });
}

function copyButtons() {
  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const input = document.getElementById(button.dataset.copy);
      try { await navigator.clipboard.writeText(input.value); }
      catch (error) { input.select(); document.execCommand("copy"); }
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
  });
}

// After a save: follow the sync state until Cal.com has answered.
function syncWatch(notice) {
  const url = notice.dataset.syncWatch;
  const started = Date.now();
  const tick = async () => {
    const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (!answer.ok) return;
    const state = await answer.json();
    document.querySelectorAll("[data-sync-state]").forEach((el) => { el.textContent = state.sync_state; });
    const badge = document.querySelector("[data-status]");
    if (badge) badge.textContent = state.status.replace(/_/g, " ");
    const meeting = document.querySelector("[data-meeting]");
    if (meeting && state.meeting_url && /^https?:\/\//i.test(state.meeting_url)) {
      const link = Object.assign(document.createElement("a"),
        { href: state.meeting_url, textContent: state.meeting_url, rel: "noopener noreferrer", target: "_blank" });
      meeting.replaceChildren(link);
    }
    if (state.last_error) {
      notice.append(" — " + state.last_error);
    }
    if (state.sync_state === "pending" && Date.now() - started < 60000) setTimeout(tick, 1000);
  };
  setTimeout(tick, 500);
}

function drawer() {
  const panel = document.querySelector("[data-drawer]");
  if (!panel) return;
  const first = panel.querySelector("input:not([type=hidden]):not([readonly]), select, textarea");
  if (first && !panel.querySelector("[aria-invalid=true]")) first.focus();
  const invalid = panel.querySelector("[aria-invalid=true]");
  if (invalid) invalid.focus();
  const close = panel.querySelector("[data-drawer-close]");
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && close && !document.querySelector("dialog[open]")) window.location = close.href;
  });
}

// A background import's progress, until it is done; then the page shows the report.
function importProgress(bar) {
  const tick = async () => {
    const answer = await fetch(bar.dataset.importProgress, { credentials: "same-origin", cache: "no-store" });
    if (!answer.ok) return;
    const state = await answer.json();
    bar.max = state.total; bar.value = state.done;
    const done = document.querySelector("[data-import-done]");
    if (done) done.textContent = String(state.done);
    if (state.status === "queued" || state.status === "running") setTimeout(tick, 1000);
    else window.location.reload();
  };
  setTimeout(tick, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-import-progress]").forEach(importProgress);
  document.querySelectorAll("[data-live-search]").forEach(liveSearch);
  document.querySelectorAll("[data-appointment-form]").forEach(slotPicker);
  document.querySelectorAll("[data-sync-watch]").forEach(syncWatch);
  dialogs();
  copyButtons();
  drawer();
});

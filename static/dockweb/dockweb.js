// dockweb's own script for every page. Handlers live here, not in attributes, so that the
// Content-Security-Policy can refuse all inline script.

// htmx processes swapped content when it "settles", by default 20 ms after the swap: in
// between, a live part's new copy is in the page but deaf (a notice or dockweb:changed
// meant for it is lost, a form sent from it leaves the page). No transition of dockweb's
// needs that delay: new content is processed at once.
if (window.htmx) htmx.config.defaultSettleDelay = 0;

// A <select data-autosubmit> submits its form when changed (the language menu); without
// JavaScript its form shows a button instead (<noscript>).
document.addEventListener("change", (event) => {
  const field = event.target;
  if (field instanceof HTMLSelectElement && field.dataset.autosubmit !== undefined && field.form) {
    field.form.submit();
  }
});

// A form with data-reset-after is emptied once htmx has sent it and the answer is in (the
// tag form, which sits outside the live part it changes: nothing else would clear it).
document.addEventListener("htmx:afterRequest", (event) => {
  const form = event.detail.elt;
  if (form instanceof HTMLFormElement && form.dataset.resetAfter !== undefined && event.detail.successful) {
    form.reset();
  }
});

// --- the menu button (narrow screens) ------------------------------------------------------
// Without JavaScript the navigation is always shown; with it, narrow screens show a button
// that opens and closes it. The stylesheet folds it from the first paint where scripting is
// enabled (@media (scripting: enabled): no flash of the open menu before this runs), and
// under body.menu-collapsible in browsers that do not know that media feature.
function setUpMenu() {
  const button = document.getElementById("menu-button");
  const menu = document.getElementById("sidebar-menu");
  if (!button || !menu) return;
  document.body.classList.add("menu-collapsible");
  button.hidden = false;
  button.addEventListener("click", () => {
    const open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    menu.classList.toggle("open", open);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && menu.classList.contains("open")) {
      button.setAttribute("aria-expanded", "false");
      menu.classList.remove("open");
      button.focus();
    }
  });
}

// --- confirmation of destructive actions -------------------------------------------------
// A form with data-confirm (and a hidden ask=1) is sent only after the person confirms in
// the one dialog of base.html, which names the target. Confirming adds confirmed=1 and sends
// the form again (htmx sends it when the form has hx-post). Without JavaScript the server
// answers ask=1 with a confirmation page instead (dockweb/confirm.py).
let pending = null; // {form, submitter, opener}

function confirmDialog() {
  return document.getElementById("confirm-dialog");
}

function openConfirm(form, submitter) {
  const dialog = confirmDialog();
  if (!dialog || typeof dialog.showModal !== "function") return false;
  const data = form.dataset;
  dialog.querySelector("#confirm-dialog-title").textContent = data.confirm || "";
  dialog.querySelector("#confirm-dialog-target").textContent = data.confirmTarget || "";
  const detail = dialog.querySelector("#confirm-dialog-detail");
  detail.textContent = data.confirmDetail || "";
  detail.hidden = !data.confirmDetail;
  dialog.querySelector("#confirm-dialog-ok").textContent =
    data.confirmAction || (submitter && submitter.textContent.trim()) || "OK";
  pending = { form: form, submitter: submitter, opener: submitter || document.activeElement };
  dialog.returnValue = "";
  dialog.showModal();
  dialog.querySelector("#confirm-dialog-cancel").focus();
  return true;
}

// The form on the page now that does what ``form`` (no longer on the page) did: the same
// action, the same fields (the CSRF token aside) and the same submitter (name and value).
function formKey(form) {
  const fields = [];
  for (const [name, value] of new FormData(form)) {
    if (name !== "csrfmiddlewaretoken" && name !== "confirmed") fields.push(`${name}=${value}`);
  }
  return `${form.action} ${fields.sort().join("&")}`;
}

function sameForm(form, submitter) {
  const key = formKey(form);
  for (const other of document.querySelectorAll("form[data-confirm]")) {
    if (formKey(other) !== key) continue;
    if (!submitter) return { form: other, submitter: null };
    const button = [...other.querySelectorAll("button")].find(
      (b) => b.name === submitter.name && b.value === submitter.value,
    );
    if (button) return { form: other, submitter: button };
  }
  return null;
}

// The focus goes back to the button that opened the dialog, or to its new copy when a live
// part was fetched again meanwhile.
function focusOpener(p) {
  if (p.opener && p.opener.isConnected) {
    p.opener.focus();
    return;
  }
  const again = sameForm(p.form, p.submitter);
  const target = again && (again.submitter || again.form.querySelector("button"));
  if (target) target.focus();
}

function setUpConfirm() {
  const dialog = confirmDialog();
  if (!dialog) return;
  dialog.addEventListener("close", () => {
    const p = pending;
    pending = null;
    if (!p) return;
    if (dialog.returnValue !== "confirm") {
      focusOpener(p);
      return;
    }
    if (!p.form.isConnected) {
      // a live part was fetched again while the dialog was open: its new copy of the form
      const again = sameForm(p.form, p.submitter);
      if (!again) return;
      p.form = again.form;
      p.submitter = again.submitter;
    }
    const flag = document.createElement("input");
    flag.type = "hidden";
    flag.name = "confirmed";
    flag.value = "1";
    flag.dataset.confirmFlag = "";
    p.form.appendChild(flag);
    p.form.dataset.confirmed = "1";
    if (p.submitter && p.submitter.form === p.form) p.form.requestSubmit(p.submitter);
    else p.form.requestSubmit();
    // the flag goes with this one submission only (htmx has read the values by now)
    setTimeout(() => {
      flag.remove();
      delete p.form.dataset.confirmed;
      focusOpener(p);
    }, 0);
  });
}

// Capture phase: this runs before htmx's own submit handler on the form.
document.addEventListener(
  "submit",
  (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    // A live part's new copy is in the page some milliseconds before htmx processes it
    // (when it settles): a form sent from it then would leave the page for the answer
    // instead of showing it in place. htmx processes it now, before its own handler runs
    // (processing twice is a no-op).
    if (window.htmx && form.matches("[hx-post], [hx-get]")) htmx.process(form);
    if (form.dataset.confirm === undefined) return;
    if (form.dataset.confirmed === "1") return;
    if (openConfirm(form, event.submitter)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  },
  true,
);

document.addEventListener("DOMContentLoaded", () => {
  setUpMenu();
  setUpConfirm();
});

// Live pages. <body sse-connect> holds the stream of change notices (/events/, htmx's SSE
// extension); a live part (data-live) fetches itself again on the notices its hx-trigger
// names ("sse:containers"). Its "every Ns" trigger is the fallback: polls are skipped while
// the stream is open and run again while it is down. Each time the stream opens, the first
// time included, every live part fetches itself once ("live:resync"): a notice sent between
// the page's rendering (or the outage) and the subscription would be lost otherwise, and a
// quick job would stay "Queued" on its page.
let streamOpen = false;
document.addEventListener("htmx:sseOpen", () => {
  streamOpen = true;
  document.documentElement.dataset.live = "open";
  document.querySelectorAll("[data-live]").forEach((el) => htmx.trigger(el, "live:resync"));
});
const streamDown = () => {
  streamOpen = false;
  document.documentElement.dataset.live = "down";
};
document.addEventListener("htmx:sseError", streamDown);
document.addEventListener("htmx:sseClose", streamDown);
document.addEventListener("htmx:beforeRequest", (event) => {
  // a poll has no triggering event; a notice or a person's action has one
  const elt = event.detail.elt;
  if (streamOpen && elt.hasAttribute("data-live") && !event.detail.requestConfig.triggeringEvent) {
    event.preventDefault();
  }
});

// A notice can come while a part's fetch is on its way (htmx queues the new fetch on the
// element the answer then replaces, and drops it with the element) or while the answer is
// being settled (the new element listens only once it is processed): the part would keep
// the state of an earlier notice, e.g. a finished pull left in the sidebar. So the time of
// each topic's last notice is kept (each notice comes first as one unnamed message listing
// its topics), and a part whose new element comes in after a notice of one of its topics
// that is newer than its fetch fetches itself once more.
const noticeAt = new Map();
const sentAt = new Map();
const topicsOf = (elt) => (elt.getAttribute("hx-trigger") || "")
  .split(",").map((t) => t.trim()).filter((t) => t.startsWith("sse:")).map((t) => t.slice(4));
document.addEventListener("htmx:sseOpen", (event) => {
  const source = event.detail.source;
  if (source && !source.dockwebNotices) {
    source.dockwebNotices = true;
    source.addEventListener("message", (message) => {
      const now = performance.now();
      message.data.split(" ").forEach((topic) => noticeAt.set(topic, now));
    });
  }
});
document.addEventListener("htmx:beforeSend", (event) => {
  const elt = event.detail.elt;
  if (elt.id && elt.hasAttribute("data-live")) {
    sentAt.set(elt.id, performance.now());
  }
});
document.addEventListener("htmx:load", (event) => {
  const elt = event.detail.elt;
  if (!elt || !elt.id || !elt.hasAttribute("data-live")) {
    return;
  }
  if (!sentAt.has(elt.id)) {
    return;
  }
  const sent = sentAt.get(elt.id);
  if (topicsOf(elt).some((topic) => (noticeAt.get(topic) ?? -1) > sent)) {
    htmx.trigger(elt, "live:resync");
  }
});

// Actions inside a live part: a part (an element that fetches itself again, "live:resync"
// among its triggers) that holds a form whose request is on its way is not replaced until
// the answer is in: its fetch is skipped, or its answer dropped, and it fetches itself
// once the last such request has ended. Replacing it would take the form out of the page
// under its request: the answer's notice of a change (HX-Trigger: dockweb:changed) would
// reach no one, and a fetch answered before the action would show the state before it.
// (The submit handler above covers a form sent from a part's new copy.)
const PART = '[hx-get][hx-trigger*="live:resync"]';
const busy = new Map(); // part -> requests from inside it on their way
const stale = new WeakSet(); // parts that skipped a fetch meanwhile
document.addEventListener("htmx:beforeSend", (event) => {
  const elt = event.detail.elt;
  const part = elt.parentElement && elt.parentElement.closest(PART);
  if (!part) return;
  busy.set(part, (busy.get(part) || 0) + 1);
  stale.add(part); // the action changes what it shows: it fetches itself after
  // "loadend" comes after htmx has handled the answer ("load"), whatever the outcome
  event.detail.xhr.addEventListener("loadend", () => {
    const left = (busy.get(part) || 1) - 1;
    if (left > 0) {
      busy.set(part, left);
      return;
    }
    busy.delete(part);
    if (stale.has(part)) {
      stale.delete(part);
      if (part.isConnected) htmx.trigger(part, "live:resync");
    }
  });
});
// A part's own fetch on its way: htmx queues a trigger that comes meanwhile (a notice,
// dockweb:changed) on the element the answer then replaces, and drops it with it; the part
// would keep the state from before that change (an untagged tag left on the image page).
// Such a trigger is remembered, and the part's new copy fetches itself once more. (Polls
// fire no htmx:trigger: they are not counted.)
const fetching = new WeakSet(); // parts whose own fetch is on its way
const triggeredMeanwhile = new WeakSet();
document.addEventListener("htmx:beforeSend", (event) => {
  const elt = event.detail.elt;
  if (!elt.matches(PART)) return;
  fetching.add(elt);
  event.detail.xhr.addEventListener("loadend", () => {
    fetching.delete(elt);
    if (!triggeredMeanwhile.has(elt)) return;
    triggeredMeanwhile.delete(elt);
    // not replaced (no answer, an error, a dropped answer): htmx has sent the queued fetch
    if (elt.isConnected) return;
    const copy = elt.id && document.getElementById(elt.id);
    if (copy && copy.matches(PART)) htmx.trigger(copy, "live:resync");
  });
});
document.addEventListener("htmx:trigger", (event) => {
  if (fetching.has(event.target)) triggeredMeanwhile.add(event.target);
});
document.addEventListener("htmx:beforeRequest", (event) => {
  const elt = event.detail.elt;
  if (busy.get(elt)) {
    event.preventDefault();
    stale.add(elt);
  }
});
document.addEventListener("htmx:beforeSwap", (event) => {
  // its own fetch that was on its way when the action was sent (another element's request
  // aimed at it, e.g. the containers list's filter, is the person's choice: it goes on)
  const target = event.detail.target;
  const config = event.detail.requestConfig;
  if (target && busy.get(target) && config && config.elt === target) {
    event.detail.shouldSwap = false;
    stale.add(target);
  }
});

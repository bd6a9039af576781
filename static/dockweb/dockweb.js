// dockweb's own script for every page. Handlers live here, not in attributes, so that the
// Content-Security-Policy can refuse all inline script.

// A <select data-autosubmit> submits its form when changed (the language menu); without
// JavaScript its form shows a button instead (<noscript>).
document.addEventListener("change", (event) => {
  const field = event.target;
  if (field instanceof HTMLSelectElement && field.dataset.autosubmit !== undefined && field.form) {
    field.form.submit();
  }
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

// A notice that comes while a part's fetch is on its way is queued by htmx on the element
// that the answer then replaces, and so dropped with it: the part would show the state of
// the earlier notice (a finished pull left in the sidebar). Remember the part, and fetch it
// again once its new element is in. A notice that itself started the fetch (the request
// begins synchronously, before htmx:sseMessage) is not a missed one.
const missed = new Set();
document.addEventListener("htmx:beforeSend", (event) => {
  const elt = event.detail.elt;
  elt.liveSending = true;
  queueMicrotask(() => {
    elt.liveSending = false;
  });
});
document.addEventListener("htmx:sseMessage", (event) => {
  const elt = event.target;
  if (elt.id && elt.hasAttribute("data-live") && !elt.liveSending
      && elt.classList.contains("htmx-request")) {
    missed.add(elt.id);
  }
});
document.addEventListener("htmx:load", (event) => {
  const elt = event.detail.elt;
  if (elt && elt.id && missed.delete(elt.id)) {
    htmx.trigger(elt, "live:resync");
  }
});

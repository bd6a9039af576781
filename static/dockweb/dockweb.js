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
  if (!elt || !elt.id || !elt.hasAttribute("data-live") || !sentAt.has(elt.id)) {
    return;
  }
  const sent = sentAt.get(elt.id);
  if (topicsOf(elt).some((topic) => (noticeAt.get(topic) ?? -1) > sent)) {
    htmx.trigger(elt, "live:resync");
  }
});

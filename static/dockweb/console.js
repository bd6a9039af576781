// The console page: xterm.js on a console session (containers/console.py).
// Output arrives as Server-Sent Events (base64 of the pty's bytes); keystrokes are batched
// and POSTed in order, one request at a time; the fit addon sizes the terminal to its box
// and every new size is POSTed. Copy: selecting copies, as do Ctrl+Shift+C and the Copy
// button. Paste: Ctrl+Shift+V, right-click (without a selection) and the Paste button read
// the clipboard and send the text as input. Leaving the page ends the session (not the
// container).
(function () {
  "use strict";
  const el = document.getElementById("terminal");
  if (!el) return;
  const status = document.getElementById("console-status");
  const csrf = el.dataset.csrf;
  let ended = false;

  const term = new Terminal({
    cursorBlink: true,
    fontFamily: "ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace",
    fontSize: 14,
    scrollback: 5000,
  });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(el);
  window.dockwebTerminal = term; // for tests and the curious: the buffer is readable

  function post(url, fields) {
    const body = new URLSearchParams(fields);
    return fetch(url, {
      method: "POST",
      body: body,
      headers: { "X-CSRFToken": csrf },
      credentials: "same-origin",
    });
  }

  // -- input: batched, in order -------------------------------------------------------------
  let pending = "";
  let inFlight = false;
  function flush() {
    if (inFlight || !pending || ended) return;
    const data = pending;
    pending = "";
    inFlight = true;
    post(el.dataset.input, { data: data })
      .catch(() => {})
      .finally(() => {
        inFlight = false;
        if (pending) flush();
      });
  }
  function send(text) {
    if (ended || !text) return;
    pending += text;
    setTimeout(flush, 10);
  }
  term.onData(send);

  // -- size -----------------------------------------------------------------------------------
  let lastSize = "";
  function sendSize() {
    const size = term.cols + "x" + term.rows;
    if (ended || size === lastSize) return;
    lastSize = size;
    post(el.dataset.resize, { cols: term.cols, rows: term.rows }).catch(() => {});
  }
  term.onResize(sendSize);
  let fitTimer = null;
  function refit() {
    clearTimeout(fitTimer);
    fitTimer = setTimeout(() => {
      fit.fit();
      sendSize();
    }, 50);
  }
  window.addEventListener("resize", refit);
  fit.fit();

  // -- copy and paste -----------------------------------------------------------------------
  function copySelection() {
    const text = term.getSelection();
    if (text && navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
    return !!text;
  }
  function pasteClipboard() {
    if (!navigator.clipboard) return;
    navigator.clipboard
      .readText()
      .then((text) => term.paste(text)) // bracketed paste when the shell asked for it
      .catch(() => {});
  }
  term.onSelectionChange(() => {
    if (term.hasSelection()) copySelection();
  });
  term.attachCustomKeyEventHandler((e) => {
    if (e.type !== "keydown" || !e.ctrlKey || !e.shiftKey) return true;
    const key = e.key.toLowerCase();
    if (key === "c") {
      e.preventDefault();
      copySelection();
      return false;
    }
    if (key === "v") {
      e.preventDefault(); // no native paste event as well: the text would come twice
      pasteClipboard();
      return false;
    }
    return true;
  });
  el.addEventListener("contextmenu", (e) => {
    e.preventDefault();
    if (!copySelection()) pasteClipboard();
  });
  const copyButton = document.getElementById("console-copy");
  if (copyButton) copyButton.addEventListener("click", () => { copySelection(); term.focus(); });
  const pasteButton = document.getElementById("console-paste");
  if (pasteButton) pasteButton.addEventListener("click", () => { pasteClipboard(); term.focus(); });

  // -- output -------------------------------------------------------------------------------
  function decode(b64) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes;
  }
  const source = new EventSource(el.dataset.stream);
  source.addEventListener("open", () => {
    if (status && !ended) status.textContent = el.dataset.connected;
    lastSize = "";
    sendSize();
  });
  source.addEventListener("out", (e) => term.write(decode(e.data)));
  source.addEventListener("end", (e) => {
    ended = true;
    source.close();
    const info = JSON.parse(e.data);
    let text = el.dataset.ended;
    if (info.exit_code !== null && info.exit_code !== undefined) text += " (" + info.exit_code + ")";
    if (info.error) text += ": " + info.error;
    if (status) status.textContent = text;
    el.dataset.state = "ended";
    term.write("\r\n\x1b[2m[" + text + "]\x1b[0m\r\n");
  });

  // -- leaving ------------------------------------------------------------------------------
  function closeSession() {
    if (ended) return;
    const form = new FormData();
    form.append("csrfmiddlewaretoken", csrf);
    navigator.sendBeacon(el.dataset.close, form);
  }
  window.addEventListener("pagehide", closeSession);
  const closeForm = document.getElementById("console-close-form");
  if (closeForm) {
    closeForm.addEventListener("submit", (e) => {
      e.preventDefault();
      post(el.dataset.close, {}).catch(() => {});
    });
  }
  term.focus();
})();

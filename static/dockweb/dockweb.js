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

// --- the menu button (narrow screens) ------------------------------------------------------
// Without JavaScript the navigation is always shown; with it, narrow screens show a button
// that opens and closes it (the stylesheet hides the menu under body.menu-collapsible).
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

function setUpConfirm() {
  const dialog = confirmDialog();
  if (!dialog) return;
  dialog.addEventListener("close", () => {
    const p = pending;
    pending = null;
    if (!p) return;
    if (dialog.returnValue !== "confirm") {
      if (p.opener && p.opener.isConnected) p.opener.focus();
      return;
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
      if (p.opener && p.opener.isConnected) p.opener.focus();
    }, 0);
  });
}

// Capture phase: this runs before htmx's own submit handler on the form.
document.addEventListener(
  "submit",
  (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || form.dataset.confirm === undefined) return;
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

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

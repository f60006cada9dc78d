// The console's only script (no build step): dialogs, local times, and htmx settings.
"use strict";
document.addEventListener("click", (event) => {
  const opener = event.target.closest("[data-open]");
  if (opener) {
    const dialog = document.getElementById(opener.dataset.open);
    if (dialog) { dialog.showModal(); dialog.querySelector("textarea, input:not([type=hidden]), select")?.focus(); }
  }
  const closer = event.target.closest("[data-close]");
  if (closer) closer.closest("dialog")?.close();
});

// <time datetime="…Z" title="… UTC">: show the reader's local time; UTC stays on hover.
function localTimes(root) {
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  for (const node of root.querySelectorAll("time[datetime]")) {
    const moment = new Date(node.getAttribute("datetime"));
    if (!Number.isNaN(moment.getTime())) node.textContent = format.format(moment);
  }
}
document.addEventListener("DOMContentLoaded", () => localTimes(document));
document.addEventListener("htmx:afterSettle", (event) => localTimes(event.target));

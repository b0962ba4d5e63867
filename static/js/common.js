// Small behaviours of every page, kept out of the templates: the Content-Security-Policy allows
// no inline script or event handler attribute.
(function () {
  "use strict";
  // <form data-confirm="Delete X?">: asks before it submits.
  document.addEventListener("submit", (event) => {
    const message = event.target.dataset && event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });
  document.addEventListener("click", (event) => {
    const target = event.target;
    if (!(target instanceof Element)) return;
    if (target.matches("[data-print]")) window.print();
    if (target.matches("[data-select-on-click]")) target.select();
  });
  // The secret of a new key or token: Copy puts it on the clipboard.
  const copy = document.getElementById("copy-secret");
  if (copy) {
    copy.addEventListener("click", async () => {
      const input = document.getElementById(copy.dataset.target);
      input.select();
      try {
        await navigator.clipboard.writeText(input.value);
      } catch (error) {
        document.execCommand("copy");
      }
      copy.textContent = "Copied";
    });
  }
})();

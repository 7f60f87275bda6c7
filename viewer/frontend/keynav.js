// Keyboard navigation for lists: ArrowUp/ArrowDown (or k/j) move the selection,
// Enter opens the selected row's link. Rows are the children carrying data-href.
export function enableKeyboardNavigation(list) {
  if (list.dataset.keynavReady) return;
  list.dataset.keynavReady = "1";

  const rows = () => Array.from(list.querySelectorAll("[data-href]"));
  const select = (row) => {
    rows().forEach((r) => r.removeAttribute("aria-selected"));
    if (!row) return;
    row.setAttribute("aria-selected", "true");
    row.scrollIntoView({ block: "nearest" });
  };

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target instanceof HTMLElement && target.closest("input, textarea, select")) return;
    const all = rows();
    if (all.length === 0) return;
    const current = all.findIndex((r) => r.getAttribute("aria-selected") === "true");
    if (event.key === "ArrowDown" || event.key === "j") {
      select(all[Math.min(current + 1, all.length - 1)]);
      event.preventDefault();
    } else if (event.key === "ArrowUp" || event.key === "k") {
      select(all[Math.max(current - 1, 0)]);
      event.preventDefault();
    } else if (event.key === "Enter" && current >= 0) {
      window.location.assign(all[current].dataset.href);
    }
  });
  list.addEventListener("click", (event) => {
    const row = event.target instanceof Element ? event.target.closest("[data-href]") : null;
    if (row && !(event.target instanceof HTMLAnchorElement)) select(row);
  });
}

// Entry point of the browser bundle: wires each feature to the elements that ask
// for it through data- attributes, after every page load and htmx swap.
import { enableKeyboardNavigation } from "./keynav.js";
import { enableUpload } from "./upload.js";

function mount(root) {
  root.querySelectorAll("[data-keynav]").forEach(enableKeyboardNavigation);
  root.querySelectorAll("[data-upload]").forEach(enableUpload);
}

mount(document);
document.body.addEventListener("htmx:afterSwap", (event) => mount(event.target));

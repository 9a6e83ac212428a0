// Starts the console (a file, not an inline script, so the page's CSP can forbid inline code).
import init from "/ui/x0t_ui.js";
init({ module_or_path: "/ui/x0t_ui_bg.wasm" })
  .then(() => document.getElementById("boot")?.remove())
  .catch((e) => { document.getElementById("boot").textContent = "The console failed to start: " + e; });

// The single-page app: routes in the URL hash to a page module; each page returns a function that stops it.
import { setToken } from "./api.js";
import { el, replaceChildren } from "./dom.js";
import { renderExperimentList } from "./experiments.js";
import { renderExperiment } from "./experiment.js";
import { renderTrial } from "./trial.js";

const ROUTES = [
  [/^#?\/?$/, () => renderExperimentList],
  [/^#\/experiments\/(\d+)$/, (id) => (container) => renderExperiment(container, Number(id))],
  [/^#\/trials\/(\d+)$/, (id) => (container) => renderTrial(container, Number(id))],
];

let stopPage = null;

function route() {
  if (stopPage) stopPage();
  stopPage = null;
  replaceChildren(document.getElementById("banner"));
  const container = document.getElementById("app");
  const hash = window.location.hash || "#/";
  for (const [pattern, page] of ROUTES) {
    const match = hash.match(pattern);
    if (match) {
      container.dataset.route = hash;
      stopPage = page(...match.slice(1))(container) || null;
      return;
    }
  }
  replaceChildren(container, el("p", { className: "error", dataset: { testid: "not-found" } },
    "No such page: ", hash, ". ", el("a", { href: "#/" }, "Experiments")));
}

// A failed request started by a control (sort, filter, selector) shows in the banner instead of the console.
window.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  const banner = document.getElementById("banner");
  replaceChildren(banner, el("p", { className: "error", dataset: { testid: "error" } },
    String((event.reason && event.reason.message) || event.reason)));
});
document.getElementById("token-input").addEventListener("input", (event) => setToken(event.target.value));
window.addEventListener("hashchange", route);
route();

// Page lifetime: load once, then poll while `shouldPoll()` says so, until the page is left.
import { el } from "./dom.js";

const POLL_MILLISECONDS = 3000;

/** States in which an experiment can still change. */
export function isLive(state) {
  return state === "ACTIVE" || state === "PAUSED";
}

/**
 * Run `refresh()` now and again every few seconds while `shouldPoll()` is true; returns the stop function.
 * A failed refresh shows its error in `errorBox` and polling goes on. `marker.dataset.refreshes` counts the
 * refreshes done (a page is fully drawn once it is 1), and `data-live` says whether polling goes on.
 */
export function poll(refresh, shouldPoll, errorBox, marker) {
  let timer = null;
  let stopped = false;
  let refreshes = 0;
  const tick = async () => {
    try {
      await refresh();
      errorBox.replaceChildren();
      refreshes += 1;
      marker.dataset.refreshes = refreshes;
    } catch (error) {
      errorBox.replaceChildren(errorMessage(error));
    }
    marker.dataset.live = !stopped && shouldPoll();
    if (marker.dataset.live === "true") timer = window.setTimeout(tick, POLL_MILLISECONDS);
  };
  tick();
  return () => {
    stopped = true;
    window.clearTimeout(timer);
  };
}

/** An error as a paragraph of text. */
export function errorMessage(error) {
  return el("p", { className: "error", dataset: { testid: "error" } }, String(error.message || error));
}

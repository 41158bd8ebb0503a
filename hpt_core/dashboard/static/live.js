// Page lifetime: load once, then poll while `shouldPoll()` says so, until the page is left.
import { el } from "./dom.js";

export const POLL_MILLISECONDS = 3000;

/** States in which an experiment can still change. */
export function isLive(state) {
  return state === "ACTIVE" || state === "PAUSED";
}

/**
 * Run `refresh()` now and again every few seconds while `shouldPoll()` is true; returns the stop function.
 * A failed refresh shows its error in `errorBox` and polling goes on.
 */
export function poll(refresh, shouldPoll, errorBox) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    try {
      await refresh();
      errorBox.replaceChildren();
    } catch (error) {
      errorBox.replaceChildren(errorMessage(error));
    }
    if (!stopped && shouldPoll()) timer = window.setTimeout(tick, POLL_MILLISECONDS);
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

// #/experiments/<id> : summary, controls, charts, the searcher's view and the trials table, live while it runs.
import { api } from "./api.js";
import { el, fact, formatDuration, formatNumber, formatTime, replaceChildren, section, stateBadge } from "./dom.js";
import { bestOverTime, hyperparameterViews, learningCurves } from "./experiment_charts.js";
import { progressBar, trialsByState } from "./experiments.js";
import { errorMessage, isLive, poll } from "./live.js";
import { searcherView } from "./searcher_view.js";
import { trialsTable } from "./trials_table.js";

export function renderExperiment(container, experimentId) {
  const errorBox = el("div");
  replaceChildren(container, el("p", { className: "muted" }, "Loading…"), errorBox);
  let stopPolling = null;
  let stopped = false;
  api.get(`/experiments/${experimentId}`).then((experiment) => {
    if (stopped) return;
    const page = buildPage(experimentId, experiment);
    replaceChildren(container, page.element, errorBox);
    let state = experiment.state;
    stopPolling = poll(async () => {
      const latest = await api.get(`/experiments/${experimentId}`);
      state = latest.state;
      container.dataset.experimentState = state;
      await page.refresh(latest);
    }, () => isLive(state), errorBox, page.element);
  }).catch((error) => replaceChildren(container, el("p", {}, el("a", { href: "#/" }, "← experiments")), errorMessage(error)));
  return () => {
    stopped = true;
    if (stopPolling) stopPolling();
  };
}

function buildPage(experimentId, experiment) {
  const context = { metric: experiment.metric, smallerIsBetter: experiment.smaller_is_better };
  const summary = el("div", { className: "summary", dataset: { testid: "experiment-summary" } });
  const controls = actionControls(experimentId);
  const bestCheckpoint = el("div", { dataset: { testid: "best-checkpoint" } });
  const names = experiment.hyperparameters.map((hyperparameter) => hyperparameter.name);
  const parts = [
    bestOverTime(experimentId, context), learningCurves(experimentId, context),
    hyperparameterViews(experimentId, context), searcherView(experimentId, context), trialsTable(experimentId, names),
  ];
  const [best, curves, hparams, searcher, trials] = parts;
  const element = el("div", { dataset: { testid: "experiment-page", experimentId } },
    el("p", {}, el("a", { href: "#/" }, "← experiments")),
    el("h1", { dataset: { testid: "experiment-title" } }, `Experiment ${experimentId}: `, experiment.name || "(unnamed)"),
    experiment.description ? el("p", { className: "description" }, experiment.description) : null,
    summary, el("div", { className: "row" }, controls.element, bestCheckpoint),
    section("Best validation metric over time", "best-over-time", best.element),
    section("Learning curves of the top trials", "learning-curves", curves.element),
    section("Hyperparameters", "hyperparameters", hparams.element),
    section(`Search method: ${experiment.searcher}`, "searcher", searcher.element),
    section("Trials", "trials", trials.element));
  const refresh = async (latest) => {
    renderSummary(summary, latest);
    controls.render(latest);
    await Promise.all([...parts.map((part) => part.refresh()), renderBestCheckpoint(bestCheckpoint, experimentId)]);
  };
  return { element, refresh };
}

function renderSummary(node, experiment) {
  replaceChildren(node,
    fact("State", stateBadge(experiment.state), "summary-state"),
    fact("Searcher", experiment.searcher, "summary-searcher"),
    fact("Metric", `${experiment.metric} (${experiment.smaller_is_better ? "smaller" : "larger"} is better)`, "summary-metric"),
    fact("Best", experiment.best_metric === null ? "—"
      : el("span", {}, formatNumber(experiment.best_metric), " ",
        el("a", { href: `#/trials/${experiment.best_trial_id}` },
          `trial ${experiment.best_trial_id} (#${experiment.best_trial_number})`)), "summary-best"),
    fact("Progress", progressBar(experiment.progress), "summary-progress"),
    fact("Trials", trialsByState(experiment.trials_by_state, experiment.trial_count), "summary-trials"),
    fact("Controller", controllerText(experiment.controller), "summary-controller"),
    fact("Started", formatTime(experiment.started), "summary-started"),
    fact("Duration", formatDuration(experiment.duration_seconds), "summary-duration"));
}

function controllerText(controller) {
  if (!controller) return "—";
  const where = `process ${controller.pid} on ${controller.host} since ${formatTime(controller.since)}`;
  return controller.expired ? `${where} (lease expired: \`hpt experiment resume\` takes it over)` : where;
}

const ACTIONS = [
  ["pause", "Pause", (state) => state === "ACTIVE"],
  ["activate", "Resume", (state) => state === "PAUSED"],
  ["cancel", "Cancel", isLive],
];

/** The action buttons the experiment's state allows (only when the server has a token); the message of the last
 * action stays across refreshes. */
function actionControls(experimentId) {
  const buttons = el("span", {});
  const message = el("span", { className: "muted", dataset: { testid: "action-message" } });
  let shown = null;
  const run = async (action) => {
    try {
      const { state } = await api.post(`/experiments/${experimentId}/${action}`);
      message.textContent = `Experiment is now ${state}.`;
      render({ ...shown, state });
    } catch (error) {
      message.textContent = error.status === 401 || error.status === 403
        ? `Not allowed: ${error.message} (enter the dashboard's token above)` : error.message;
    }
  };
  const render = (experiment) => {
    shown = experiment;
    const allowed = experiment.writable ? ACTIONS.filter(([, , isAllowed]) => isAllowed(experiment.state)) : [];
    replaceChildren(buttons, allowed.map(([action, label]) => {
      const button = el("button", { type: "button", dataset: { testid: `action-${action}` } }, label);
      button.addEventListener("click", () => run(action));
      return button;
    }));
  };
  return { element: el("div", { className: "actions", dataset: { testid: "experiment-actions" } }, buttons, message), render };
}

async function renderBestCheckpoint(node, experimentId) {
  const best = await api.get(`/experiments/${experimentId}/best-checkpoint`);
  if (best.checkpoint_id === null) {
    replaceChildren(node, el("span", { className: "muted" }, "No checkpoint yet."));
    return;
  }
  replaceChildren(node, el("a", { href: best.download, download: "", className: "button", dataset: { testid: "best-checkpoint-download" } },
    `Download best checkpoint (trial ${best.trial_id})`));
}

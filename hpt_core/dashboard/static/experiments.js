// #/ : every experiment with its state, searcher, progress, trials by state, best metric and times.
import { api } from "./api.js";
import { dataTable, el, formatDuration, formatNumber, formatTime, replaceChildren, stateBadge } from "./dom.js";
import { isLive, poll } from "./live.js";

const HEADERS = ["ID", "Name", "State", "Searcher", "Progress", "Trials", "Best metric", "Started", "Duration"];

export function renderExperimentList(container) {
  const errorBox = el("div");
  const body = el("div", { dataset: { testid: "experiments" } }, el("p", { className: "muted" }, "Loading…"));
  replaceChildren(container, el("h1", {}, "Experiments"), errorBox, body);
  let anyLive = false;
  return poll(async () => {
    const { experiments } = await api.get("/experiments");
    anyLive = experiments.some((experiment) => isLive(experiment.state));
    replaceChildren(body, experiments.length ? experimentTable(experiments)
      : el("p", { className: "muted" }, "No experiments in this storage yet."));
  }, () => anyLive, errorBox, body);
}

function experimentTable(experiments) {
  return dataTable({ id: "experiments-table" }, HEADERS, experiments.map(experimentRow));
}

function experimentRow(experiment) {
  const link = `#/experiments/${experiment.id}`;
  return el("tr", { dataset: { testid: "experiment-row", experimentId: experiment.id } },
    el("td", { className: "num" }, el("a", { href: link }, experiment.id)),
    el("td", {}, el("a", { href: link, dataset: { testid: "experiment-name" } }, experiment.name || "(unnamed)")),
    el("td", {}, stateBadge(experiment.state)),
    el("td", {}, experiment.searcher),
    el("td", {}, progressBar(experiment.progress)),
    el("td", {}, trialsByState(experiment.trials_by_state, experiment.trial_count)),
    el("td", { className: "num" }, bestMetric(experiment)),
    el("td", {}, formatTime(experiment.started)),
    el("td", { className: "num" }, formatDuration(experiment.duration_seconds)));
}

export function progressBar(progress) {
  const percent = Math.round((progress || 0) * 100);
  return el("span", { className: "progress", title: `${percent}%`, dataset: { testid: "progress" } },
    el("progress", { max: 100, value: percent }), ` ${percent}%`);
}

export function trialsByState(byState, total) {
  const parts = Object.entries(byState || {}).filter(([, count]) => count > 0)
    .map(([state, count]) => el("span", { className: `count state-${state.replace(/[^A-Z_]/g, "")}`, title: state },
      `${count} ${state.toLowerCase()}`));
  return el("span", { className: "trial-counts", dataset: { testid: "trial-counts" } },
    `${total} `, parts.length ? ["(", parts.flatMap((part, index) => (index ? [", ", part] : [part])), ")"] : "");
}

function bestMetric(experiment) {
  if (experiment.best_metric === null || experiment.best_metric === undefined) return "—";
  return el("span", { title: `${experiment.metric} (${experiment.smaller_is_better ? "smaller" : "larger"} is better)` },
    formatNumber(experiment.best_metric), " ", el("span", { className: "muted" }, experiment.metric));
}

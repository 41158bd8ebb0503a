// #/trials/<id> : metrics over time, hyperparameters, restarts, log tail and checkpoints (with downloads).
import { api } from "./api.js";
import { chartDiv, draw, layout, plotlyText } from "./charts.js";
import { dataTable, el, fact, formatNumber, formatTime, formatValue, replaceChildren, section, stateBadge } from "./dom.js";
import { poll } from "./live.js";

const LIVE_TRIAL_STATES = new Set(["PENDING", "RUNNING", "PAUSED"]);

export function renderTrial(container, trialId) {
  const errorBox = el("div");
  const header = el("div", { dataset: { testid: "trial-header" } }, el("p", { className: "muted" }, "Loading…"));
  const facts = el("div", { className: "summary", dataset: { testid: "trial-summary" } });
  const hparams = el("div", { dataset: { testid: "trial-hparams" } });
  const validationChart = chartDiv("trial-validation-chart", { chart: "trial-validation" });
  const trainingChart = chartDiv("trial-training-chart", { chart: "trial-training" });
  const checkpoints = el("div", { dataset: { testid: "trial-checkpoints" } });
  const log = el("pre", { className: "log", dataset: { testid: "trial-log" } });
  const logNote = el("p", { className: "muted" });
  replaceChildren(container, el("div", { dataset: { testid: "trial-page", trialId } },
    header, facts, errorBox,
    section("Validation metrics", "trial-validation", validationChart),
    section("Training metrics", "trial-training", trainingChart),
    section("Hyperparameters", "trial-hyperparameters", hparams),
    section("Checkpoints", "trial-checkpoints-section", checkpoints),
    section("Log (tail)", "trial-log-section", logNote, log)));
  let live = false;
  return poll(async () => {
    const trial = await api.get(`/trials/${trialId}`);
    live = LIVE_TRIAL_STATES.has(trial.state);
    renderHeader(header, trial);
    renderFacts(facts, trial);
    replaceChildren(hparams, keyValueTable(trial.hparams));
    replaceChildren(checkpoints, checkpointTable(trial.checkpoints));
    const [validation, training, tail] = await Promise.all([
      api.get(`/trials/${trialId}/metrics`, { kind: "validation" }),
      api.get(`/trials/${trialId}/metrics`, { kind: "training" }),
      api.get(`/trials/${trialId}/log`),
    ]);
    await drawMetrics(validationChart, validation.series);
    await drawMetrics(trainingChart, training.series);
    log.textContent = tail.text || "(empty)";
    logNote.textContent = tail.truncated ? "Only the end of the log is shown." : "";
  }, () => live, errorBox, container.firstChild);
}

function renderHeader(node, trial) {
  replaceChildren(node,
    el("p", {}, el("a", { href: `#/experiments/${trial.experiment_id}`, dataset: { testid: "trial-experiment-link" } },
      `← experiment ${trial.experiment_id}`)),
    el("h1", {}, `Trial ${trial.id} (#${trial.request_id} in experiment ${trial.experiment_id})`));
}

function renderFacts(node, trial) {
  replaceChildren(node,
    fact("State", stateBadge(trial.state), "trial-state"),
    fact("Stopped because", trial.end_reason || "—", "trial-end-reason"),
    fact("Request", trial.request_id, "trial-request"),
    fact("Parent", trial.parent_trial_id === null || trial.parent_trial_id === undefined ? "—"
      : el("a", { href: `#/trials/${trial.parent_trial_id}` }, `trial ${trial.parent_trial_id}`), "trial-parent"),
    fact("Length trained", formatNumber(trial.length_trained), "trial-length"),
    fact("Restarts", trial.restarts, "trial-restarts"),
    fact("Started", formatTime(trial.started), "trial-started"),
    fact("Ended", formatTime(trial.ended), "trial-ended"));
}

function keyValueTable(values) {
  return el("table", { className: "data kv" }, el("tbody", {}, Object.entries(values).map(([name, value]) =>
    el("tr", { dataset: { testid: "hparam-row" } }, el("th", { scope: "row" }, name), el("td", {}, formatValue(value))))));
}

function checkpointTable(checkpoints) {
  if (!checkpoints.length) return el("p", { className: "muted" }, "No checkpoints.");
  return dataTable({}, ["Checkpoint", "Batches", "Epochs", "State", "Created", ""],
    checkpoints.map((checkpoint) => el("tr", { dataset: { testid: "checkpoint-row", checkpointId: checkpoint.id } },
      el("td", { className: "mono" }, checkpoint.id),
      el("td", { className: "num" }, formatNumber(checkpoint.batches)),
      el("td", { className: "num" }, formatNumber(checkpoint.epochs)),
      el("td", {}, checkpoint.state),
      el("td", {}, formatTime(checkpoint.created)),
      el("td", {}, checkpoint.download
        ? el("a", { href: checkpoint.download, download: "", className: "button", dataset: { testid: "checkpoint-download" } }, "Download zip")
        : el("span", { className: "muted" }, "deleted")))));
}

function drawMetrics(node, series) {
  const names = Object.keys(series);
  node.dataset.series = names.length;
  return draw(node, names.map((name) => ({
    type: "scatter", mode: "lines+markers", marker: { size: 4 }, name: plotlyText(name),
    x: series[name].map((point) => point[0]), y: series[name].map((point) => point[1]),
  })), layout({ xaxis: { title: { text: "batches" } }, height: 320 }));
}

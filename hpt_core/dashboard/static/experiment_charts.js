// The experiment page's charts: best metric over time, learning curves of the top N, and the
// hyperparameter views (parallel coordinates and metric-vs-hyperparameter scatters) at a chosen length.
// Each is a component {element, refresh()} that redraws its Plotly graphs in place.
import { api } from "./api.js";
import { chartDiv, draw, layout, linkPointsToTrials, logTicks, plotlyText } from "./charts.js";
import { el, formatNumber, formatValue, replaceChildren } from "./dom.js";

function select(testid, options, selected) {
  return el("select", { dataset: { testid } },
    options.map(([value, label]) => el("option", { value, selected: String(value) === String(selected) }, label)));
}

function control(label, input) {
  return el("label", { className: "control" }, label, " ", input);
}

/** The best value of the searcher metric over time; each improvement is a marker labelled with its trial. */
export function bestOverTime(experimentId, context) {
  const axis = select("best-x", [["seconds", "wall-clock"], ["total_batches", "total training length"]], "seconds");
  const chart = chartDiv("best-over-time-chart", { chart: "best-over-time" });
  const note = el("p", { className: "muted" });
  const refresh = async () => {
    const { points } = await api.get(`/experiments/${experimentId}/best-over-time`);
    note.textContent = points.length ? "" : "No validation of the searcher metric yet.";
    const xKey = axis.value;
    await draw(chart, [{
      type: "scatter", mode: "lines+markers+text", line: { shape: "hv", color: "#2b6cb0" }, marker: { size: 8 },
      x: points.map((point) => point[xKey]), y: points.map((point) => point.value),
      // each run of improvements by one trial is labelled once, at its first point
      text: points.map((point, index) => (index > 0 && points[index - 1].trial_id === point.trial_id
        ? "" : `trial ${point.trial_id}`)),
      textposition: "top right",
      customdata: points.map((point) => point.trial_id),
      hovertemplate: "trial %{customdata}<br>%{y}<extra></extra>", name: "best",
    }], layout({
      xaxis: { title: { text: xKey === "seconds" ? "seconds since start" : "batches trained by all trials" } },
      yaxis: { title: { text: `best ${plotlyText(context.metric)}` } }, showlegend: false,
    }));
    linkPointsToTrials(chart);
  };
  axis.addEventListener("change", refresh);
  return { element: el("div", {}, el("div", { className: "controls" }, control("x axis", axis)), note, chart), refresh };
}

/** Learning curves (the searcher metric against batches or epochs) of the top N trials. */
export function learningCurves(experimentId, context) {
  const top = select("curves-top", [1, 3, 5, 10, 20].map((n) => [n, n]), 5);
  const xAxis = select("curves-x", [["batches", "batches"], ["epochs", "epochs"]], "batches");
  const scale = select("curves-scale", [["linear", "linear"], ["log", "log"]], "linear");
  const chart = chartDiv("curves-chart", { chart: "curves" });
  const refresh = async () => {
    const { series } = await api.get(`/experiments/${experimentId}/curves`,
      { metric: context.metric, top: top.value, x: xAxis.value });
    await draw(chart, series.map((curve) => ({
      type: "scatter", mode: "lines+markers", marker: { size: 4 }, name: `trial ${curve.trial_id}`,
      x: curve.points.map((point) => point[0]), y: curve.points.map((point) => point[1]),
      customdata: curve.points.map(() => curve.trial_id),
      hovertemplate: `trial ${curve.trial_id}<br>%{x}: %{y}<extra></extra>`,
    })), layout({
      xaxis: { title: { text: xAxis.value } },
      yaxis: { title: { text: plotlyText(context.metric) }, type: scale.value },
      legend: { orientation: "v" },
    }));
    linkPointsToTrials(chart);
  };
  for (const input of [top, xAxis, scale]) input.addEventListener("change", refresh);
  return {
    element: el("div", {}, el("div", { className: "controls" },
      control("top N", top), control("x axis", xAxis), control("y scale", scale)), chart),
    refresh,
  };
}

/** How a hyperparameter's values are placed on an axis: numbers, log10 of numbers, or category indices. */
function axisOf(hyperparameter, values) {
  if (hyperparameter.type === "categorical") {
    const categories = hyperparameter.vals || [...new Set(values.map(String))];
    const keys = categories.map((value) => JSON.stringify(value));
    return {
      position: (value) => keys.indexOf(JSON.stringify(value)),
      // parcoords writes tick labels as plain SVG text (unlike its axis titles), so they are not escaped
      ticks: { tickvals: categories.map((_, index) => index), ticktext: categories.map(formatValue) },
      range: [0, Math.max(categories.length - 1, 1)],
    };
  }
  if (hyperparameter.type === "log") {
    const range = logRange(hyperparameter, values.map(Math.log10));
    return { position: Math.log10, ticks: logTicks(...range), range };
  }
  return { position: Number, ticks: {} };
}

/** The log10 range of a log hyperparameter: its searched range (base ** minval to base ** maxval), widened to the
 * values drawn (a PBT perturbation may leave it), or the values' own range when the config gives none. */
function logRange(hyperparameter, logs) {
  const { minval, maxval, base } = hyperparameter;
  const scale = Math.log10(base || 10);
  const bounds = typeof minval === "number" && typeof maxval === "number" ? [minval * scale, maxval * scale] : [];
  const low = Math.min(...bounds, ...logs);
  const high = Math.max(...bounds, ...logs);
  return low === high ? [low - 1, high + 1] : [low, high];
}

/** Hyperparameters that vary (const ones are left out of the views). */
function varying(hyperparameters) {
  return hyperparameters.filter((hyperparameter) => hyperparameter.type !== "const");
}

/** Parallel coordinates coloured by the metric and one scatter per hyperparameter, at a chosen length. */
export function hyperparameterViews(experimentId, context) {
  const length = select("hparams-length", [["", "latest"]], "");
  const note = el("p", { className: "muted", dataset: { testid: "hparams-note" } });
  const parcoords = chartDiv("parcoords-chart", { chart: "parcoords" });
  const scatterGrid = el("div", { className: "scatter-grid", dataset: { testid: "hp-scatters" } });
  const scatters = new Map();
  const refresh = async () => {
    const data = await api.get(`/experiments/${experimentId}/hparams`, { metric: context.metric, length: length.value });
    updateLengths(length, data.lengths);
    const hyperparameters = varying(data.hyperparameters);
    const trials = data.trials.filter((trial) => typeof trial.value === "number" && Number.isFinite(trial.value));
    note.textContent = trials.length ? `${trials.length} trials with a value of ${context.metric}`
      : `No trial has a value of ${context.metric} at this length yet.`;
    await drawParcoords(parcoords, hyperparameters, trials, context);
    for (const hyperparameter of hyperparameters) {
      if (!scatters.has(hyperparameter.name)) {
        const node = chartDiv("hp-scatter", { hp: hyperparameter.name });
        scatters.set(hyperparameter.name, node);
        scatterGrid.append(node);
      }
      await drawScatter(scatters.get(hyperparameter.name), hyperparameter, trials, context);
    }
  };
  length.addEventListener("change", refresh);
  return {
    element: el("div", {}, el("div", { className: "controls" }, control("at training length (batches)", length)),
      note, parcoords, scatterGrid),
    refresh,
  };
}

function updateLengths(selectNode, lengths) {
  const current = selectNode.value;
  const wanted = ["", ...lengths.map(String)];
  const present = [...selectNode.options].map((option) => option.value);
  if (wanted.join() === present.join()) return;
  replaceChildren(selectNode, wanted.map((value) =>
    el("option", { value, selected: value === current }, value === "" ? "latest" : formatNumber(Number(value)))));
}

function drawParcoords(node, hyperparameters, trials, context) {
  const dimensions = hyperparameters.map((hyperparameter) => {
    const values = trials.map((trial) => trial.hparams[hyperparameter.name]);
    const axis = axisOf(hyperparameter, values);
    return {
      label: plotlyText(hyperparameter.name), values: values.map(axis.position),
      ...axis.ticks, ...(axis.range ? { range: axis.range } : {}),
    };
  });
  const metricValues = trials.map((trial) => trial.value);
  dimensions.push({ label: plotlyText(context.metric), values: metricValues });
  return draw(node, [{
    type: "parcoords", dimensions,
    line: {
      color: metricValues, colorscale: "Viridis", reversescale: context.smallerIsBetter, showscale: true,
      colorbar: { title: { text: plotlyText(context.metric) } },
    },
  }], layout({ margin: { l: 80, r: 80, t: 60, b: 30 } }));
}

function drawScatter(node, hyperparameter, trials, context) {
  const categorical = hyperparameter.type === "categorical";
  const values = trials.map((trial) => trial.hparams[hyperparameter.name]);
  return draw(node, [{
    type: "scatter", mode: "markers", marker: { size: 8, color: "#2b6cb0", opacity: 0.8 },
    x: categorical ? values.map((value) => plotlyText(formatValue(value))) : values,
    y: trials.map((trial) => trial.value), customdata: trials.map((trial) => trial.trial_id),
    hovertemplate: "trial %{customdata}<br>%{x}: %{y}<extra></extra>",
  }], layout({
    height: 280, margin: { l: 60, r: 10, t: 10, b: 50 },
    xaxis: { title: { text: plotlyText(hyperparameter.name) }, ...scatterAxis(hyperparameter.type, values) },
    yaxis: { title: { text: plotlyText(context.metric) } },
  })).then(() => linkPointsToTrials(node));
}

function scatterAxis(type, values) {
  if (type === "categorical") return { type: "category" };
  if (type !== "log") return { type: "linear" };
  const logs = values.map(Math.log10);
  const decades = Math.max(...logs) - Math.min(...logs);
  return decades >= 2 ? { type: "log", dtick: 1, exponentformat: "power" } : { type: "log", exponentformat: "power" };
}

// The search method's own view: ASHA's brackets and rungs, PBT's lineage tree, and why trials stopped.
import { api } from "./api.js";
import { chartDiv, draw, layout, linkPointsToTrials, plotlyText } from "./charts.js";
import { dataTable, el, formatNumber, formatValue, replaceChildren, stateBadge } from "./dom.js";

/** At most this many rows of per-trial detail; the trials table has all of them. */
const MAX_TRIAL_ROWS = 500;

export function searcherView(experimentId, context) {
  const element = el("div", { dataset: { testid: "searcher-view" } });
  let lineageChart = null;
  const refresh = async () => {
    const view = await api.get(`/experiments/${experimentId}/searcher-view`);
    element.dataset.kind = view.kind;
    if (view.kind === "adaptive_asha") {
      replaceChildren(element, ashaBrackets(view.brackets), endReasons(view.end_reasons), ashaTrials(view.trials));
    } else if (view.kind === "pbt") {
      lineageChart = lineageChart || chartDiv("pbt-lineage-chart", { chart: "pbt-lineage" });
      replaceChildren(element, lineageChart, lineageEdges(view.edges), endReasons(view.end_reasons));
      await drawLineage(lineageChart, view.nodes, view.edges, context);
    } else {
      replaceChildren(element, el("p", { className: "muted" }, `The ${view.kind} searcher has no view of its own.`),
        endReasons(view.end_reasons));
    }
  };
  return { element, refresh };
}

function trialLink(trialId) {
  return el("a", { href: `#/trials/${trialId}` }, trialId);
}

const RUNG_COLUMNS = [
  ["reached", "Reached", "trials that reported a validation at this rung"],
  ["promoted", "Promoted", "trials promoted to the next rung"],
  ["stopped_here", "Stopped here", "trials closed at this rung"],
  ["waiting", "Paused here", "trials waiting at this rung for a promotion"],
  ["training", "Training", "trials training towards this rung"],
  ["exited", "Exited early", "trials that exited (error, invalid hyperparameters, stop request) before reporting here"],
];

function ashaBrackets(brackets) {
  return el("div", { className: "brackets" }, brackets.map((bracket) =>
    el("div", { className: "bracket", dataset: { testid: "asha-bracket", bracket: bracket.bracket } },
      el("h3", {}, `Bracket ${bracket.bracket}`, bracket.max_trials ? ` (up to ${bracket.max_trials} trials)` : ""),
      dataTable({ dataset: { testid: "asha-rungs" } },
        ["Rung", "Length", ...RUNG_COLUMNS.map(([, label, help]) => el("th", { scope: "col", title: help }, label))],
        bracket.rungs.map((rung) =>
          el("tr", { dataset: { testid: "asha-rung", rung: rung.rung } },
            el("td", { className: "num" }, rung.rung),
            el("td", { className: "num" }, formatNumber(rung.length)),
            RUNG_COLUMNS.map(([field]) => el("td", { className: "num", dataset: { field } }, rung[field]))))))));
}

function endReasons(reasons) {
  const entries = Object.entries(reasons || {});
  if (!entries.length) return null;
  return el("div", {}, el("h3", {}, "Why trials stopped"),
    dataTable({ dataset: { testid: "end-reasons" } }, ["Reason", "Trials"], entries.map(([reason, count]) =>
      el("tr", {}, el("td", {}, reason), el("td", { className: "num" }, count)))));
}

function ashaTrials(trials) {
  const shown = trials.slice(0, MAX_TRIAL_ROWS);
  return el("details", { className: "asha-trials" },
    el("summary", {}, `Where each trial is, and why it stopped (${trials.length})`),
    trials.length > shown.length ? el("p", { className: "muted" }, `First ${shown.length}; the trials table has all.`) : null,
    dataTable({ dataset: { testid: "asha-trials" } }, ["Trial", "Bracket", "Rung", "At rung", "State", "Why it stopped"], shown.map((trial) =>
      el("tr", {}, el("td", { className: "num" }, trial.trial_id === null ? `request ${trial.request_id}` : trialLink(trial.trial_id)),
        el("td", { className: "num" }, trial.bracket), el("td", { className: "num" }, trial.rung),
        el("td", {}, trial.status), el("td", {}, trial.state ? stateBadge(trial.state) : "—"),
        el("td", {}, trial.end_reason || "—")))));
}

function changedText(changed) {
  return Object.entries(changed || {}).map(([name, [before, after]]) =>
    `${name}: ${formatValue(before)} → ${formatValue(after)}`).join("; ");
}

function lineageEdges(edges) {
  return el("details", { className: "pbt-edges", open: edges.length <= 30 },
    el("summary", {}, `Parent → child (${edges.length})`),
    dataTable({ dataset: { testid: "pbt-edges" } }, ["Parent", "Child", "Changed hyperparameters"], edges.map((edge) =>
      el("tr", { dataset: { testid: "pbt-edge", parent: edge.parent_trial_id, child: edge.child_trial_id } },
        el("td", { className: "num" }, trialLink(edge.parent_trial_id)),
        el("td", { className: "num" }, trialLink(edge.child_trial_id)),
        el("td", {}, changedText(edge.changed) || "—")))));
}

/** Place nodes by generation (x) and keep children next to their parent (y). */
function lineagePositions(nodes, edges) {
  const parentOf = new Map(edges.map((edge) => [edge.child_trial_id, edge.parent_trial_id]));
  const position = new Map();
  const generations = [...new Set(nodes.map((node) => node.generation))].sort((a, b) => a - b);
  for (const generation of generations) {
    const members = nodes.filter((node) => node.generation === generation);
    const parentY = (node) => (position.has(parentOf.get(node.trial_id)) ? position.get(parentOf.get(node.trial_id)).y : -1);
    members.sort((a, b) => parentY(a) - parentY(b) || a.trial_id - b.trial_id);
    members.forEach((node, index) => position.set(node.trial_id, { x: generation, y: index }));
  }
  return position;
}

function drawLineage(chart, nodes, edges, context) {
  const position = lineagePositions(nodes, edges);
  const edgeX = [];
  const edgeY = [];
  for (const edge of edges) {
    const from = position.get(edge.parent_trial_id);
    const to = position.get(edge.child_trial_id);
    if (!from || !to) continue;
    edgeX.push(from.x, to.x, null);
    edgeY.push(from.y, to.y, null);
  }
  const changedBy = new Map(edges.map((edge) => [edge.child_trial_id, changedText(edge.changed)]));
  return draw(chart, [
    { type: "scatter", mode: "lines", x: edgeX, y: edgeY, line: { color: "#a0aec0", width: 1.5 }, hoverinfo: "skip", name: "edges" },
    {
      type: "scatter", mode: "markers+text", name: "trials",
      x: nodes.map((node) => position.get(node.trial_id).x), y: nodes.map((node) => position.get(node.trial_id).y),
      text: nodes.map((node) => String(node.trial_id)), textposition: "top center",
      marker: { size: 14, color: nodes.map((node) => node.best_validation), colorscale: "Viridis", reversescale: context.smallerIsBetter,
        showscale: true, colorbar: { title: { text: plotlyText(context.metric) } }, line: { color: "#2d3748", width: 1 } },
      customdata: nodes.map((node) => node.trial_id),
      hovertext: nodes.map((node) => plotlyText(`trial ${node.trial_id}, best ${formatNumber(node.best_validation)}`
        + (changedBy.get(node.trial_id) ? `; changed ${changedBy.get(node.trial_id)}` : ""))),
      hoverinfo: "text",
    },
  ], layout({
    showlegend: false, height: 360,
    xaxis: { title: { text: "generation" }, dtick: 1, zeroline: false },
    yaxis: { visible: false, range: [-0.7, Math.max(0, ...[...position.values()].map((place) => place.y)) + 0.9] },
  })).then(() => linkPointsToTrials(chart));
}

// The experiment's trials: sortable by clicking a header, filtered by state and text, paginated by the API.
import { api } from "./api.js";
import { el, formatNumber, formatValue, replaceChildren, stateBadge } from "./dom.js";

const TRIAL_STATES = ["PENDING", "RUNNING", "PAUSED", "COMPLETED", "CANCELED", "ERROR"];
const PAGE_SIZES = [5, 10, 25, 50, 100];
const DEFAULT_PAGE_SIZE = 25;

function columns(hyperparameterNames) {
  return [
    { label: "ID", sort: "id", cell: (trial) => el("a", { href: `#/trials/${trial.id}` }, trial.id), numeric: true },
    { label: "#", sort: null, cell: (trial) => trial.request_id, numeric: true },  // its number within the experiment
    { label: "State", sort: "state", cell: (trial) => stateBadge(trial.state) },
    ...hyperparameterNames.map((name) => ({
      label: name, sort: `hp:${name}`, cell: (trial) => (name in trial.hparams ? formatValue(trial.hparams[name]) : "—"),
    })),
    { label: "Best validation", sort: "best_validation", cell: (trial) => formatNumber(trial.best_validation), numeric: true },
    { label: "Latest validation", sort: "latest_validation", cell: (trial) => formatNumber(trial.latest_validation), numeric: true },
    { label: "Length", sort: "batches", cell: (trial) => `${formatNumber(trial.batches)} b / ${formatNumber(trial.epochs)} ep`, numeric: true },
    { label: "Restarts", sort: "restarts", cell: (trial) => trial.restarts, numeric: true },
    { label: "Checkpoints", sort: "checkpoints", cell: (trial) => trial.checkpoints, numeric: true },
    { label: "Stopped because", sort: null, cell: (trial) => trial.end_reason || "—" },
  ];
}

export function trialsTable(experimentId, hyperparameterNames) {
  const query = { offset: 0, limit: DEFAULT_PAGE_SIZE, sort: "id", order: "asc", state: "", q: "" };
  const cols = columns(hyperparameterNames);
  const stateFilter = el("select", { dataset: { testid: "trials-state-filter" } },
    el("option", { value: "" }, "all states"), TRIAL_STATES.map((state) => el("option", { value: state }, state)));
  const textFilter = el("input", { type: "search", placeholder: "filter (text)", dataset: { testid: "trials-text-filter" } });
  const pageSize = el("select", { dataset: { testid: "trials-page-size" } },
    PAGE_SIZES.map((size) => el("option", { value: size, selected: size === DEFAULT_PAGE_SIZE }, `${size} per page`)));
  const previous = el("button", { type: "button", dataset: { testid: "trials-prev" } }, "← previous");
  const next = el("button", { type: "button", dataset: { testid: "trials-next" } }, "next →");
  const pageInfo = el("span", { className: "muted", dataset: { testid: "trials-page-info" } });
  const headerRow = el("tr", {});
  const body = el("tbody", {});
  const tableNode = el("table", { className: "data", id: "trials-table", dataset: { testid: "trials-table" } },
    el("thead", {}, headerRow), body);

  const headerCells = cols.map((column) => {
    if (!column.sort) return el("th", { scope: "col" }, column.label);
    const button = el("button", { type: "button", className: "sort", dataset: { sort: column.sort } }, column.label);
    button.addEventListener("click", () => {
      query.order = query.sort === column.sort && query.order === "asc" ? "desc" : "asc";
      query.sort = column.sort;
      query.offset = 0;
      refresh();
    });
    return el("th", { scope: "col", dataset: { testid: "trials-header", sort: column.sort } }, button);
  });
  replaceChildren(headerRow, headerCells);

  async function refresh() {
    const page = await api.get(`/experiments/${experimentId}/trials`, query);
    headerCells.forEach((cell, index) => {
      const sorted = cols[index].sort && cols[index].sort === query.sort;
      if (sorted) cell.setAttribute("aria-sort", query.order === "asc" ? "ascending" : "descending");
      else cell.removeAttribute("aria-sort");
    });
    replaceChildren(body, page.trials.map((trial) =>
      el("tr", { dataset: { testid: "trial-row", trialId: trial.id } },
        cols.map((column) => el("td", { className: column.numeric ? "num" : null }, column.cell(trial))))));
    const first = page.total ? page.offset + 1 : 0;
    const last = page.offset + page.trials.length;
    pageInfo.textContent = `${first}–${last} of ${page.total} trials`;
    tableNode.dataset.total = page.total;
    previous.disabled = page.offset === 0;
    next.disabled = last >= page.total;
  }

  let typing = null;
  textFilter.addEventListener("input", () => {
    window.clearTimeout(typing);
    typing = window.setTimeout(() => { query.q = textFilter.value; query.offset = 0; refresh(); }, 300);
  });
  stateFilter.addEventListener("change", () => { query.state = stateFilter.value; query.offset = 0; refresh(); });
  pageSize.addEventListener("change", () => { query.limit = Number(pageSize.value); query.offset = 0; refresh(); });
  previous.addEventListener("click", () => { query.offset = Math.max(0, query.offset - query.limit); refresh(); });
  next.addEventListener("click", () => { query.offset += query.limit; refresh(); });

  const element = el("div", {},
    el("div", { className: "controls" }, stateFilter, textFilter, pageSize),
    el("div", { className: "table-scroll" }, tableNode),
    el("div", { className: "pager" }, previous, pageInfo, next));
  return { element, refresh };
}

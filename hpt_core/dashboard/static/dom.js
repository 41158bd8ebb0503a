// DOM building and formatting helpers. Data is only ever put in the page as text (textContent,
// attribute values), never parsed as HTML: a hostile name from an experiment file stays text.

/** An element with attributes (a `dataset` object sets data-*) and children (nodes or strings as text). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

/** Append children (nodes, strings as text, nested arrays; null/undefined/false skipped). */
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace every child of `node`. */
export function replaceChildren(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** A number for reading: up to 4 significant digits, exponent form when very small or large. */
export function formatNumber(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return String(value);
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e7) return value.toLocaleString("en-US");
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e7)) return value.toExponential(3);
  return String(Number(value.toPrecision(4)));
}

/** A hyperparameter value for reading: numbers formatted, other values as JSON-ish text. */
export function formatValue(value) {
  if (typeof value === "number") return formatNumber(value);
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** An ISO 8601 time as "YYYY-MM-DD HH:MM:SS UTC". */
export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toISOString().slice(0, 19).replace("T", " ") + " UTC";
}

/** Seconds as "1h 02m 03s". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const total = Math.round(seconds);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const rest = total % 60;
  if (hours) return `${hours}h ${String(minutes).padStart(2, "0")}m ${String(rest).padStart(2, "0")}s`;
  if (minutes) return `${minutes}m ${String(rest).padStart(2, "0")}s`;
  return `${rest}s`;
}

/** A coloured badge for a state (CSS class state-<STATE>). */
export function stateBadge(state) {
  return el("span", { className: `badge state-${String(state).replace(/[^A-Z_]/g, "")}`, dataset: { testid: "state" } }, state);
}

/** A data table: a header row (texts, or <th> nodes) and body rows (<tr> nodes). */
export function dataTable(attributes, headers, rows) {
  return el("table", { className: "data", ...attributes },
    el("thead", {}, el("tr", {}, headers.map((header) =>
      (header instanceof Node ? header : el("th", { scope: "col" }, header))))),
    el("tbody", {}, rows));
}

/** A labelled value of a summary line. */
export function fact(label, value, testid) {
  return el("div", { className: "fact", dataset: { testid } }, el("span", { className: "label" }, label), value);
}

/** A section with a heading and a test id. */
export function section(title, testid, ...children) {
  return el("section", { className: "panel", dataset: { testid } }, el("h2", {}, title), children);
}

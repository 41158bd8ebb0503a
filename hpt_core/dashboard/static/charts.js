// Plotly wrappers. Plotly renders titles, names, tick labels and hover text as a small HTML subset, so
// every string that comes from data goes through plotlyText() first: it then shows as literal text.

const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

/** A data string made safe for Plotly's text rendering: <, > and & shown literally. */
export function plotlyText(value) {
  return String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Base layout shared by the charts. */
export function layout(fields) {
  return {
    margin: { l: 60, r: 20, t: 30, b: 50 },
    hovermode: "closest",
    font: { family: "system-ui, sans-serif", size: 12 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "#fafbfc",
    ...fields,
  };
}

/** Draw or update a chart in `node` (Plotly.react reuses the existing graph). */
export function draw(node, traces, chartLayout) {
  return window.Plotly.react(node, traces, chartLayout, PLOT_CONFIG);
}

/** A div for one chart with a test id. */
export function chartDiv(testid, extra = {}) {
  const node = document.createElement("div");
  node.className = "chart";
  node.dataset.testid = testid;
  Object.assign(node.dataset, extra);
  return node;
}

/** Ticks for a log10 axis over [low, high]: at 1, 2 and 5 times each power of ten when the span is short, at each
 * power of ten otherwise (the ends themselves when too few fall inside), labelled in real values. */
export function logTicks(low, high) {
  const multiples = high - low < 2 ? [1, 2, 5] : [1];
  const tickvals = [];
  for (let exponent = Math.floor(low); exponent <= Math.ceil(high); exponent += 1) {
    for (const multiple of multiples) {
      const position = exponent + Math.log10(multiple);
      if (position >= low - 1e-9 && position <= high + 1e-9) tickvals.push(position);
    }
  }
  if (tickvals.length < 2) tickvals.splice(0, tickvals.length, low, high);
  return { tickvals, ticktext: tickvals.map((position) => formatReal(10 ** position)) };
}

function formatReal(value) {
  const magnitude = Math.abs(value);
  if (magnitude >= 1e-3 && magnitude < 1e4) return String(Number(value.toPrecision(3)));
  return value.toExponential(2).replace(/\.?0+e/, "e").replace("e+", "e");
}

/** Clicking a point whose customdata is a trial id opens that trial's page (bound once per chart). */
export function linkPointsToTrials(node) {
  if (node.dataset.linksTrials) return;
  node.dataset.linksTrials = "true";
  node.on("plotly_click", (event) => {
    const point = event.points && event.points[0];
    if (point && point.customdata !== undefined && point.customdata !== null) {
      window.location.hash = `#/trials/${point.customdata}`;
    }
  });
}

// Data quality widgets of the dashboard: the quality column of the site list and the per-site
// quality chart (effective data transmission rate and completeness, GET /api/quality).
// Plain DOM and textContent only; uPlot is handed in by app.js, which loads it from /static/vendor.
"use strict";

window.FarsightQuality = (() => {
  const LOW = 0.9;  // the default pack's threshold (site-effective-rate)

  /** A fraction as a percentage for people: "97.5 %", or "–" when nothing was owed. */
  function pct(x) {
    return x === null || x === undefined ? "–" : `${(x * 100).toFixed(x >= 0.9995 ? 0 : 1)} %`;
  }

  /** site id -> the site's figures over the last 24 whole hours (one request for all sites). */
  async function summary(getJSON, dept) {
    const qs = dept ? `?department=${encodeURIComponent(dept)}` : "";
    const body = await getJSON(`/api/quality/summary${qs}`);
    return new Map(body.sites.map((s) => [s.site, s]));
  }

  /** The cell of the site list: effective rate, marked when it is below the threshold. */
  function cell(el, fig) {
    const rate = fig ? fig.effective_rate : null;
    const low = rate !== null && rate !== undefined && rate < LOW;
    return el("span", {
      class: `q${low ? " q-low" : ""}`,
      title: "Effective data transmission rate (有效数据传输率), last 24 h",
    }, ` · data ${pct(rate)}`);
  }

  /** Draw the site's quality per period into ``fig``; returns the uPlot instance (or null). */
  async function chart(U, getJSON, el, fig, site, rangeS, width) {
    const day = rangeS > 86400;
    const to = new Date();
    const from = new Date(to - (day ? 7 * 86400 : 86400) * 1000);
    const url = `/api/quality?site=${encodeURIComponent(site)}&interval=${day ? "day" : "hour"}`
      + `&from=${from.toISOString()}&to=${to.toISOString()}`;
    const body = await getJSON(url);
    const rows = body.figures.filter((f) => f.device === "");
    const cap = fig.querySelector("figcaption .q-text");
    const owed = rows.reduce((n, f) => n + f.expected, 0);
    const valid = rows.reduce((n, f) => n + f.valid, 0);
    const got = rows.reduce((n, f) => n + f.received, 0);
    const dead = body.refusals.reduce((n, r) => n + Object.values(r.dead_letters).reduce((a, b) => a + b, 0), 0);
    const lat = rows.map((f) => f.latency_max_s).filter((x) => x !== null);
    if (cap) {
      cap.textContent = owed
        ? ` effective ${pct(valid / owed)}, received ${pct(got / owed)}, max latency ${lat.length ? Math.max(...lat) : "–"} s, ${dead} refused`
        : " nothing owed in this range";
    }
    if (!rows.length) return null;
    const xs = rows.map((f) => Date.parse(f.start) / 1000);
    const data = [xs, rows.map((f) => f.effective_rate === null ? null : f.effective_rate * 100),
      rows.map((f) => f.completeness === null ? null : f.completeness * 100), xs.map(() => LOW * 100)];
    const opts = {
      width: Math.max(200, width - 4), height: 140, legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: [0, 100] } },
      axes: [{ size: 30 }, { size: 46, values: (u, ticks) => ticks.map((t) => `${t} %`) }],
      series: [{},
        { label: "effective rate", stroke: "#1f5fbf", width: 1.5, points: { show: day } },
        { label: "received", stroke: "#067647", width: 1, dash: [2, 3], points: { show: false } },
        { label: "threshold", stroke: "#b42318", dash: [6, 4], width: 1.2, points: { show: false } }],
    };
    return new U(opts, data, fig);
  }

  return { pct, summary, cell, chart };
})();

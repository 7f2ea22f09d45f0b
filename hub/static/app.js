// Farsight dashboard and duty officer's desk: plain DOM, no build step.
// Every piece of text from the server goes through textContent (never innerHTML), so a site
// name or alert summary can never inject markup. Leaflet and uPlot are loaded on demand from
// /static/vendor/ (copied from npm packages by hub/build_assets.py); nothing comes from a CDN.
"use strict";

(() => {
  const SEVERITIES = ["critical", "major", "warning", "info"];
  const OPEN_STATES = ["new", "acknowledged", "dispatched", "verified"];
  const TOKEN_KEY = "farsight.token";
  const DEPT_KEY = "farsight.department";
  const PAGE = 1000;          // alerts per request (the hub's page limit)
  const FIRST_PAGE = 200;     // the first request is small, so the queue shows at once
  const ROW = 58;             // height of one queue row in px (virtual scrolling needs a fixed one)
  const OVERSCAN = 8;
  const DASH_ALERTS = 40;     // alerts listed on the dashboard (the desk shows them all)
  const STATE_COLORS = { normal: "#067647", alerting: "#b42318", offline: "#667085", maintenance: "#a15c07" };

  const state = {
    me: null,
    sites: new Map(),       // id -> site
    latest: new Map(),      // site id -> Map("device/metric" -> reading)
    open: new Map(),        // id -> alert (not closed)
    closed: [],             // alerts fetched when the desk filters on "closed"
    queue: [],              // the desk's filtered, sorted alerts
    stats: null,
    dept: localStorage.getItem(DEPT_KEY) || "",
    view: "dashboard",
    selected: null,         // alert id under the queue's cursor
    detail: null,           // alert id open in the detail pane
    site: null,             // site id open in the site panel
    range: 3600,
    readingTimes: [],
    connectedAt: 0,
    hadError: false,
    loading: false,
    buffer: [],
    dirty: { queue: false, dash: false, sites: new Set(), figures: false },
    frame: 0,
    fresh: new Set(),
    charts: new Map(),      // metric -> {plot, data} of the site panel
    quality: new Map(),     // site id -> its data quality over the last 24 h (quality.js)
    qualityPlot: null,
  };
  const Q = window.FarsightQuality;
  const R = window.FarsightRejections;
  let rejections = null;      // the upstream rejections view (rejections.js), made in init

  const $ = (id) => document.getElementById(id);

  /** Create an element; children may be strings (added as text) or nodes. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }

  function ago(iso) {
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (!isFinite(s)) return "";
    if (s < 60) return `${Math.round(s)} s`;
    if (s < 3600) return `${Math.round(s / 60)} min`;
    if (s < 86400) return `${Math.round(s / 3600)} h`;
    return `${Math.round(s / 86400)} d`;
  }

  function fmtValue(v) {
    if (typeof v !== "number" || !isFinite(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
    return v.toLocaleString(undefined, { maximumFractionDigits: a >= 100 ? 1 : 3 });
  }

  function fmtTime(iso) {
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toLocaleString(undefined, { hour12: false });
  }

  function age(iso) {
    return el("span", { "data-ts": iso, title: iso }, ago(iso));
  }

  function inDept(dept) {
    return !state.dept || dept === state.dept;
  }

  function banner(text) {
    const b = $("banner");
    b.textContent = text || "";
    b.hidden = !text;
  }

  function setConn(kind, text) {
    const c = $("conn");
    c.className = `conn conn-${kind}`;
    c.textContent = text;
  }

  function score(a) {
    return (a.risk && typeof a.risk.score === "number") ? a.risk.score : 0;
  }

  function siteName(id) {
    const s = state.sites.get(id);
    return s ? s.name : id;
  }

  // -- HTTP -----------------------------------------------------------------------------------

  async function getJSON(url) {
    // Reads go with the token when the page has one (so the first render does not wait for the
    // session), else with the session cookie (set by startSession), which EventSource sends too.
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    const res = await fetch(url, { headers, credentials: "same-origin" });
    if (res.status === 401) {
      const err = new Error(`${url}: a token is needed`);
      err.needsToken = true;
      throw err;
    }
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    return res.json();
  }

  // A session cookie from the API token: reads and the live stream use it; changes still send the token.
  // The answer is kept in lastSession: a refused token (401) must not be retried, a lockout (429)
  // says when to try again.
  let lastSession = { status: 0, retryAfter: 0 };
  async function startSession(token) {
    const res = await fetch("/api/session", { method: "POST", headers: { Authorization: `Bearer ${token}` }, credentials: "same-origin" });
    lastSession = { status: res.status, retryAfter: Number(res.headers.get("Retry-After")) || 0 };
    if (res.ok) localStorage.setItem(TOKEN_KEY, token);
    return res.ok;
  }

  // Logout: the hub ends the session in the cookie at once (the API token stays valid).
  async function endSession() {
    await fetch("/api/session", { method: "DELETE", credentials: "same-origin" }).catch(() => null);
  }

  // What each role may do (hub/access.py): buttons the role cannot use are not shown; the hub
  // refuses them anyway.
  const RANKS = { viewer: 0, officer: 1, supervisor: 2, admin: 3 };
  function may(spec) {
    const role = state.me && state.me.role;
    return !role || !spec.role || RANKS[role] >= RANKS[spec.role];
  }

  function errorText(body, status) {
    const d = body && body.detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((e) => (e && e.msg) || JSON.stringify(e)).join("; ");
    return `HTTP ${status}`;
  }

  // -- vendor libraries, on demand ------------------------------------------------------------

  const loaded = new Map();
  function loadScript(src) {
    if (!loaded.has(src)) {
      loaded.set(src, new Promise((resolve, reject) => {
        const s = el("script", { src, async: true });
        s.addEventListener("load", resolve);
        s.addEventListener("error", () => reject(new Error(`${src} is missing: run python -m hub.build_assets`)));
        document.head.append(s);
      }));
    }
    return loaded.get(src);
  }
  function loadCss(href) {
    if (!loaded.has(href)) {
      loaded.set(href, new Promise((resolve) => {
        const l = el("link", { rel: "stylesheet", href });
        l.addEventListener("load", resolve);
        l.addEventListener("error", resolve);
        document.head.append(l);
      }));
    }
    return loaded.get(href);
  }
  const leaflet = () => Promise.all([loadCss("/static/vendor/leaflet/leaflet.css"), loadScript("/static/vendor/leaflet/leaflet.js")]).then(() => window.L);
  const uplot = () => Promise.all([loadCss("/static/vendor/uplot/uPlot.min.css"), loadScript("/static/vendor/uplot/uPlot.iife.min.js")]).then(() => window.uPlot);
  let basemapP = null;
  const basemap = () => (basemapP = basemapP || fetch("/static/vendor/basemap.geojson").then((r) => (r.ok ? r.json() : null)).catch(() => null));

  // -- site state -----------------------------------------------------------------------------

  function siteState(s) {
    const rows = [...(state.latest.get(s.id) || new Map()).values()];
    if (!rows.length) return "offline";
    const newest = Math.max(...rows.map((r) => Date.parse(r.ts)));
    const cadence = Math.max(60, ...(s.devices || []).map((d) => d.cadence_s || 60));
    if (Date.now() - newest > Math.max(3 * cadence, 600) * 1000) return "offline";
    // HJ 212 flags M (maintenance) and C (calibration) on the newest values: the site is in maintenance.
    if (rows.some((r) => r.flag === "M" || r.flag === "C")) return "maintenance";
    if (openBySite().get(s.id)) return "alerting";
    return "normal";
  }

  let bySiteCache = null;
  function openBySite() {
    if (!bySiteCache) {
      bySiteCache = new Map();
      for (const a of state.open.values()) bySiteCache.set(a.site, (bySiteCache.get(a.site) || 0) + 1);
    }
    return bySiteCache;
  }

  // -- rendering ------------------------------------------------------------------------------

  function schedule() {
    if (!state.frame) state.frame = requestAnimationFrame(flush);
  }

  function flush() {
    state.frame = 0;
    bySiteCache = null;
    if (state.dirty.queue) {
      state.dirty.queue = false;
      rebuildQueue();
    }
    if (state.dirty.dash) {
      state.dirty.dash = false;
      renderDashAlerts();
      renderSiteStates();
      if (state.site) renderSiteAlerts();
    }
    for (const id of state.dirty.sites) if (id === state.site) renderSiteLatest();
    if (state.dirty.sites.size) renderSiteStates();
    state.dirty.sites.clear();
    renderFigures();
  }

  function renderFigures() {
    const now = Date.now();
    while (state.readingTimes.length && now - state.readingTimes[0] > 60000) state.readingTimes.shift();
    let online = 0, total = 0;
    for (const s of state.sites.values()) {
      if (!inDept(s.department)) continue;
      total += 1;
      if (siteState(s) !== "offline") online += 1;
    }
    $("fig-sites").textContent = state.sites.size ? `${online}/${total}` : "–";
    // Readings that reached this page in the last minute (scaled while it has been connected for less).
    const span = Math.min(60, (now - state.connectedAt) / 1000);
    $("fig-rate").textContent = state.connectedAt && span >= 5 ? String(Math.round(state.readingTimes.length * 60 / span)) : "…";
    const bySev = Object.fromEntries(SEVERITIES.map((s) => [s, 0]));
    let overdue = 0;
    for (const a of state.open.values()) {
      if (!inDept(a.department)) continue;
      if (a.severity in bySev) bySev[a.severity] += 1;
      if (a.state === "dispatched" && a.due_at && Date.parse(a.due_at) < now) overdue += 1;
    }
    // The server's counts cover every open alert even before all pages are loaded.
    const server = state.stats && !state.dept ? state.stats.alerts.severity : null;
    for (const s of SEVERITIES) $(`fig-${s}`).textContent = String(server && state.loadingMore ? (server[s] || 0) : bySev[s]);
    $("fig-overdue").textContent = String(overdue);
  }

  function alertItem(a) {
    return el("li", { class: `alert${state.fresh.has(a.id) ? " fresh" : ""}`, "data-id": a.id },
      el("span", { class: `badge sev-${a.severity}` }, a.severity),
      el("span", { class: "summary" }, a.summary),
      el("span", { class: "meta" },
        el("span", { title: a.site }, siteName(a.site)),
        el("span", { class: `badge state-${a.state}` }, a.state),
        a.activity === "resolved" ? el("span", { class: "badge resolved" }, "resolved") : null,
        a.count > 1 ? el("span", {}, `×${a.count}`) : null,
        el("span", {}, "risk ", score(a).toFixed(1)),
        el("span", {}, "last seen ", age(a.last_seen), " ago"),
      ),
      evidenceStrip(a.evidence, `alert ${a.id}`, 1),
      el("span", { class: "actions" },
        el("button", { type: "button", class: "ghost", onclick: () => go(`#/alert/${a.id}`) }, "Open"),
        ...ACTIONS.filter((x) => x.from.includes(a.state) && x.action !== "comment" && may(x)).map((x) =>
          el("button", { type: "button", class: "ghost", "data-action": x.action, onclick: () => openAction(a, x.action) }, x.label)),
      ),
    );
  }

  /** Evidence files: the first `thumbs` as thumbnails (a video snapshot is an annotated JPEG, a
   * satellite quicklook a PNG), every file as a link; files are read with the session cookie, by hash. */
  function evidenceStrip(evidence, what, thumbs) {
    const hashes = (evidence || []).filter((h) => /^[0-9a-f]{64}$/.test(h));
    if (!hashes.length) return null;
    const href = (h) => `/api/evidence/${h}`;
    const imgs = hashes.slice(0, thumbs).map((h, i) => el("a", { href: href(h), target: "_blank", rel: "noopener", title: h, class: "thumb-link" },
      el("img", { class: "thumb", src: href(h), alt: `evidence ${i + 1} of ${what}`, loading: "lazy",
        onerror: (ev) => { ev.target.parentNode.hidden = true; } })));
    return el("span", { class: "evidence" }, ...imgs,
      ...hashes.map((h, i) => el("a", { href: href(h), target: "_blank", rel: "noopener", title: h, class: "evidence-link" }, `evidence ${i + 1}`)));
  }

  function dashAlerts() {
    return [...state.open.values()].filter((a) => inDept(a.department)).sort((a, b) => score(b) - score(a) || b.id - a.id);
  }

  function renderDashAlerts() {
    const items = dashAlerts();
    const shown = items.slice(0, DASH_ALERTS);
    $("alert-list").replaceChildren(...shown.map(alertItem));
    $("alerts-empty").hidden = items.length > 0;
    $("alert-count").textContent = items.length ? `(${items.length}${items.length > shown.length ? `, top ${shown.length} by risk` : ""})` : "";
    state.fresh.clear();
    if (!document.body.dataset.rendered && state.sites.size) {
      document.body.dataset.rendered = "1";
      performance.mark("farsight-alerts-rendered");
    }
  }

  // -- the map --------------------------------------------------------------------------------

  const map = { main: null, markers: new Map(), mini: null, miniMarker: null, layers: null };
  window.__farsightMap = map;  // for the browser tests and the console

  async function drawBase(L, m, interactive) {
    const geo = await basemap();
    if (!geo) return;
    const style = (f) => ({
      province: { color: "#475467", weight: 2, fillColor: "#e9eef5", fillOpacity: 0.6 },
      city: { color: "#667085", weight: 1.2, fill: false },
      county: { color: "#98a2b3", weight: 0.6, dashArray: "3 3", fill: false },
    }[f.properties.level] || { weight: 1 });
    L.geoJSON(geo, { style, interactive: false }).addTo(m);
    if (interactive) {
      // City names, drawn as plain text at their boundary's centre.
      for (const f of geo.features) {
        if (f.properties.level !== "city" || !["420500", "420900"].includes(f.properties.adcode)) continue;
        const c = L.geoJSON(f).getBounds().getCenter();
        L.marker(c, { interactive: false, keyboard: false, icon: L.divIcon({ className: "city-label", html: "", iconSize: null }) })
          .addTo(m).getElement().textContent = f.properties.name;
      }
    }
  }

  async function ensureMap() {
    if (map.main || !state.sites.size) return;
    let L;
    try { L = await leaflet(); } catch (err) { $("map").textContent = err.message; return; }
    if (map.main) return;
    // No tile layer: the base map is vector boundaries installed with the project.
    const m = (map.main = L.map("map", { zoomSnap: 0.25, attributionControl: false, preferCanvas: false }));
    m.getContainer().setAttribute("tabindex", "-1");
    m.setView([30.9, 112.4], 7);  // Hubei; fitted to the sites below
    // The container changes size with the layout (phone rotation, panels): keep Leaflet in step.
    m.on("dragstart", () => { m._userMoved = true; });
    m.getContainer().addEventListener("wheel", () => { m._userMoved = true; }, { passive: true });
    if (window.ResizeObserver) {
      new ResizeObserver(() => {
        const c = m.getContainer();
        if (!c.clientWidth || !c.clientHeight) return;  // hidden (the desk is shown)
        m.invalidateSize();
        if (!m._userMoved && map.bounds) m.fitBounds(map.bounds, { animate: false });
      }).observe(m.getContainer());
    }
    await drawBase(L, m, true);
    drawSites();
    loadLayers();
  }

  function drawSites() {
    const L = window.L;
    if (!L || !map.main) return;
    for (const mk of map.markers.values()) mk.remove();
    map.markers.clear();
    const pts = [];
    for (const s of state.sites.values()) {
      if (!inDept(s.department)) continue;
      const st = siteState(s);
      const mk = L.circleMarker([s.location.lat, s.location.lon], {
        radius: 8, weight: 2, color: "#fff", fillColor: STATE_COLORS[st], fillOpacity: 0.95, className: `site-marker st-${st}`,
      }).addTo(map.main);
      mk.bindTooltip(`${s.name} · ${st}`);
      mk.on("click", () => go(`#/site/${encodeURIComponent(s.id)}`));
      map.markers.set(s.id, mk);
      pts.push([s.location.lat, s.location.lon]);
    }
    map.main.invalidateSize();
    if (pts.length) {
      map.bounds = L.latLngBounds(pts).pad(0.15);
      if (map.main.getContainer().clientWidth) map.main.fitBounds(map.bounds, { animate: false });
    }
  }

  async function loadLayers() {
    let data;
    try { data = await getJSON("/api/map/layers"); } catch { return; }
    const L = window.L;
    if (!L || !map.main) return;
    if (map.layers) map.layers.remove();
    map.layers = L.layerGroup().addTo(map.main);
    L.geoJSON(data.zones, { style: { color: "#12b76a", weight: 2, dashArray: "6 4", fillOpacity: 0.08 } })
      .bindTooltip((l) => `zone: ${l.feature.properties.name || l.feature.id}`).addTo(map.layers);
    L.geoJSON(data.changes, { style: { color: "#d92d20", weight: 2, fillColor: "#f04438", fillOpacity: 0.45 } })
      .bindTooltip((l) => `change: ${String(l.feature.properties.kind || "").replace(/_/g, " ")} (${l.feature.properties.aoi})`).addTo(map.layers);
  }

  /** The site a wall screen opens on: the one with the riskiest open alert. */
  function firstSite() {
    const top = dashAlerts().find((a) => state.sites.has(a.site));
    return top ? top.site : (state.sites.keys().next().value || null);
  }

  function renderSiteStates() {
    const list = $("site-list");
    const rows = [];
    const order = { alerting: 0, offline: 1, maintenance: 2, normal: 3 };
    const sites = [...state.sites.values()].filter((s) => inDept(s.department)).map((s) => [s, siteState(s)])
      .sort((a, b) => order[a[1]] - order[b[1]] || a[0].name.localeCompare(b[0].name));
    // Rebuild only when a state or count changed, so a focused button keeps its focus.
    const sig = sites.map(([s, st]) => `${s.id}:${st}:${openBySite().get(s.id) || 0}:${Q ? Q.pct((state.quality.get(s.id) || {}).effective_rate) : ""}`).join("|") + `#${state.site}#${map.markers.size}`;
    if (sig === state.siteSig) return;
    state.siteSig = sig;
    for (const [s, st] of sites) {
      const mk = map.markers.get(s.id);
      if (mk) {
        mk.setStyle({ fillColor: STATE_COLORS[st] });
        mk.setTooltipContent(`${s.name} · ${st}`);
      }
      const n = openBySite().get(s.id) || 0;
      rows.push(el("li", {},
        el("button", { type: "button", class: `site-btn${state.site === s.id ? " current" : ""}`, "aria-current": state.site === s.id ? "true" : null,
          onclick: () => go(`#/site/${encodeURIComponent(s.id)}`) },
          el("span", { class: `dot st-${st}`, "aria-hidden": "true" }),
          el("span", { class: "name" }, s.name),
          el("span", { class: "muted" }, ` ${st}${n ? `, ${n} open` : ""}`),
          Q && state.quality.size ? Q.cell(el, state.quality.get(s.id)) : null)));
    }
    list.replaceChildren(...rows);
  }

  // -- the site panel -------------------------------------------------------------------------

  async function openSite(id) {
    const s = state.sites.get(id);
    if (!s) return;
    state.site = id;
    $("site-empty").hidden = true;
    $("site-detail").hidden = false;
    $("site-h").textContent = s.name;
    $("site-sub").textContent = [s.id, s.kind, s.entity_name, `credit ${s.credit_grade}`, s.city].filter(Boolean).join(" · ");
    renderSiteStates();
    renderSiteAlerts();
    const mk = map.markers.get(id);
    // Bring the site into view only when it is outside it: a wall screen keeps its overview.
    if (mk && map.main && !map.main.getBounds().contains(mk.getLatLng())) map.main.panTo(mk.getLatLng());
    await Promise.all([renderSiteCharts(), renderSiteQuality()]);
  }

  /** The quality column's figures (last 24 h), refreshed with the site list. */
  async function loadQuality() {
    if (!Q) return;
    // Every site the token may read: the list filters by the chosen department itself.
    try { state.quality = await Q.summary(getJSON, ""); } catch { return; }
    state.siteSig = null;
    renderSiteStates();
  }

  /** The site panel's quality chart: per hour over a day, or per day over a week. */
  async function renderSiteQuality() {
    const fig = $("site-quality");
    if (!Q || !fig) return;
    if (state.qualityPlot) { state.qualityPlot.destroy(); state.qualityPlot = null; }
    for (const old of fig.querySelectorAll(".uplot, .none")) old.remove();
    const site = state.site, range = state.range;
    let U;
    try { U = await uplot(); } catch { return; }
    let plot = null;
    try { plot = await Q.chart(U, getJSON, el, fig, site, range, fig.clientWidth || 320); } catch { return; }
    if (state.site !== site || state.range !== range) { if (plot) plot.destroy(); return; }
    if (!plot) fig.append(el("p", { class: "muted none" }, "no data owed in this range"));
    state.qualityPlot = plot;
  }

  function siteMetrics(s) {
    const metrics = [];
    for (const d of s.devices || []) for (const m of d.metrics || []) if (!metrics.includes(m)) metrics.push(m);
    const limits = s.limits || {};
    return metrics.sort((a, b) => (b in limits) - (a in limits)).slice(0, 8);
  }

  async function renderSiteCharts() {
    const s = state.sites.get(state.site);
    if (!s) return;
    const root = $("site-charts");
    for (const c of state.charts.values()) c.plot && c.plot.destroy();
    state.charts.clear();
    const metrics = siteMetrics(s);
    root.replaceChildren(...metrics.map((m) => el("figure", { class: "chart", id: `chart-${m}` },
      el("figcaption", {}, m, s.limits && m in s.limits ? el("span", { class: "muted" }, ` limit ${s.limits[m]}`) : null,
        el("span", { class: "latest", "data-metric": m })))));
    renderSiteLatest();
    let U;
    try { U = await uplot(); } catch (err) { root.append(el("p", { class: "error" }, err.message)); return; }
    const site = state.site, range = state.range;
    const to = new Date(), from = new Date(to - range * 1000);
    const interval = range <= 3600 ? "" : range <= 86400 ? "&interval=300" : "&interval=1800";
    await Promise.all(metrics.map(async (m) => {
      const fig = $(`chart-${m}`);
      let series;
      try {
        series = await getJSON(`/api/readings?site=${encodeURIComponent(site)}&metric=${encodeURIComponent(m)}&from=${from.toISOString()}&to=${to.toISOString()}${interval}`);
      } catch { return; }
      if (state.site !== site || state.range !== range || !fig) return;
      const limit = s.limits ? s.limits[m] : undefined;
      const data = toData(series.points, limit);
      if (!data[0].length) { fig.append(el("p", { class: "muted none" }, "no readings in this range")); return; }
      const plot = new U(chartOpts(U, fig.clientWidth || 320, 140, m, limit), data, fig);
      state.charts.set(m, { plot, data, limit });
    }));
  }

  function toData(points, limit) {
    const xs = [], ys = [], ls = [];
    for (const p of points) { xs.push(Date.parse(p.ts) / 1000); ys.push(p.value); ls.push(limit ?? null); }
    return limit === undefined ? [xs, ys] : [xs, ys, ls];
  }

  function chartOpts(U, width, height, metric, limit) {
    const series = [{}, { label: metric, stroke: "#1f5fbf", width: 1.5, points: { show: false } }];
    if (limit !== undefined) series.push({ label: "limit", stroke: "#b42318", dash: [6, 4], width: 1.2, points: { show: false } });
    return { width: Math.max(200, width - 4), height, series, legend: { show: false }, cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } }, axes: [{ size: 30 }, { size: 46 }] };
  }

  function renderSiteLatest() {
    const m = state.latest.get(state.site) || new Map();
    for (const node of document.querySelectorAll("#site-charts .latest")) {
      const metric = node.getAttribute("data-metric");
      const r = [...m.values()].filter((x) => x.metric === metric).sort((a, b) => Date.parse(b.ts) - Date.parse(a.ts))[0];
      node.textContent = r ? ` now ${fmtValue(r.value)} ${r.unit || ""}` : "";
    }
  }

  function appendReading(r) {
    if (r.site !== state.site || state.range > 3600) return;
    const c = state.charts.get(r.metric);
    if (!c) return;
    const t = Date.parse(r.ts) / 1000;
    if (c.data[0].length && t <= c.data[0][c.data[0].length - 1]) return;
    c.data[0].push(t); c.data[1].push(r.value);
    if (c.data.length > 2) c.data[2].push(c.limit);
    c.pending = true;
  }

  function flushCharts() {
    for (const c of state.charts.values()) if (c.pending) { c.pending = false; c.plot.setData(c.data); }
  }

  function renderSiteAlerts() {
    const items = [...state.open.values()].filter((a) => a.site === state.site).sort((a, b) => score(b) - score(a));
    $("site-alerts").replaceChildren(...(items.length ? items.map((a) => el("li", {},
      el("span", { class: `badge sev-${a.severity}` }, a.severity), " ",
      el("button", { type: "button", class: "linklike", onclick: () => go(`#/alert/${a.id}`) }, a.summary))) : [el("li", { class: "muted" }, "none")]));
    const ev = [];
    for (const a of items) for (const h of a.evidence || []) if (!ev.includes(h)) ev.push(h);
    $("site-evidence").replaceChildren(evidenceStrip(ev, siteName(state.site), 4) || el("span", { class: "muted" }, "none"));
  }

  // -- the desk: queue with virtual scrolling ------------------------------------------------

  function filters() {
    return { q: $("f-q").value.trim().toLowerCase(), severity: $("f-severity").value, state: $("f-state").value };
  }

  function matches(a, f) {
    if (!inDept(a.department)) return false;
    if (f.severity && a.severity !== f.severity) return false;
    if (f.state === "open" ? !OPEN_STATES.includes(a.state) : a.state !== f.state) return false;
    if (f.q) {
      const hay = `${a.summary} ${a.site} ${siteName(a.site)} ${a.rule_id} ${a.device} ${a.entity_id}`.toLowerCase();
      if (!hay.includes(f.q)) return false;
    }
    return true;
  }

  function rebuildQueue() {
    const f = filters();
    const src = f.state === "closed" ? state.closed : state.open.values();
    const q = [];
    for (const a of src) if (matches(a, f)) q.push(a);
    q.sort((a, b) => score(b) - score(a) || b.id - a.id);
    state.queue = q;
    $("queue-count").textContent = `(${q.length}${state.loadingMore ? "…" : ""})`;
    $("queue-spacer").style.height = `${q.length * ROW}px`;
    if (state.selected !== null && !q.some((a) => a.id === state.selected)) state.selected = q.length ? q[0].id : null;
    if (state.selected === null && q.length) state.selected = q[0].id;
    renderQueueRows();
  }

  function renderQueueRows() {
    const box = $("queue");
    const first = Math.max(0, Math.floor(box.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(state.queue.length, Math.ceil((box.scrollTop + box.clientHeight) / ROW) + OVERSCAN);
    const rows = [];
    for (let i = first; i < last; i++) {
      const a = state.queue[i];
      const sel = a.id === state.selected;
      const row = el("div", { class: `qrow${sel ? " selected" : ""}${a.id === state.detail ? " open" : ""}`, role: "option", id: `q-${a.id}`,
        "aria-selected": sel ? "true" : "false", "data-id": a.id, "aria-posinset": i + 1, "aria-setsize": state.queue.length },
        el("span", { class: `badge sev-${a.severity}` }, a.severity),
        el("span", { class: "qscore", title: "risk score" }, score(a).toFixed(1)),
        el("span", { class: "qsum" }, a.summary),
        el("span", { class: "qmeta" }, `${siteName(a.site)} · ${a.state} · `, age(a.last_seen)));
      row.style.top = `${i * ROW}px`;
      rows.push(row);
    }
    box.replaceChildren($("queue-spacer"), ...rows);
    const selRow = state.selected !== null ? document.getElementById(`q-${state.selected}`) : null;
    if (selRow) box.setAttribute("aria-activedescendant", selRow.id);
    else box.removeAttribute("aria-activedescendant");
  }

  function moveSelection(delta, toIndex) {
    if (!state.queue.length) return;
    let i = state.queue.findIndex((a) => a.id === state.selected);
    i = toIndex !== undefined ? toIndex : Math.min(state.queue.length - 1, Math.max(0, i + delta));
    if (toIndex === -1) i = state.queue.length - 1;
    state.selected = state.queue[i].id;
    const box = $("queue");
    const top = i * ROW;
    if (top < box.scrollTop) box.scrollTop = top;
    else if (top + ROW > box.scrollTop + box.clientHeight) box.scrollTop = top + ROW - box.clientHeight;
    renderQueueRows();
  }

  function queueKeys(ev) {
    const k = ev.key;
    if (k === "ArrowDown" || k === "j") moveSelection(1);
    else if (k === "ArrowUp" || k === "k") moveSelection(-1);
    else if (k === "PageDown") moveSelection(Math.max(1, Math.floor($("queue").clientHeight / ROW)));
    else if (k === "PageUp") moveSelection(-Math.max(1, Math.floor($("queue").clientHeight / ROW)));
    else if (k === "Home") moveSelection(0, 0);
    else if (k === "End") moveSelection(0, -1);
    else if (k === "Enter" && state.selected !== null) go(`#/alert/${state.selected}`);
    else return;
    ev.preventDefault();
  }

  async function loadClosed() {
    const f = filters();
    const qs = new URLSearchParams({ state: "closed", sort: "newest", limit: String(PAGE) });
    if (f.severity) qs.set("severity", f.severity);
    if (f.q) qs.set("q", f.q);
    try {
      const page = await getJSON(`/api/alerts?${qs}`);
      state.closed = page.items;
    } catch (err) { banner(err.message); }
    state.dirty.queue = true;
    schedule();
  }

  // -- the desk: alert detail -----------------------------------------------------------------

  let detailSeq = 0;
  async function openDetail(id) {
    state.detail = id;
    state.selected = id;
    document.body.classList.add("detail-open");
    $("detail-empty").hidden = true;
    const seq = ++detailSeq;
    let data;
    try { data = await getJSON(`/api/alerts/${id}/timeline`); } catch (err) {
      if (seq === detailSeq) { $("detail-body").hidden = true; $("detail-empty").hidden = false; $("detail-empty").textContent = err.message; }
      return;
    }
    if (seq !== detailSeq) return;
    const a = data.alert;
    putAlert(a);
    renderDetail(a, data.timeline);
    renderQueueRows();
  }

  function renderDetail(a, timeline) {
    $("detail-body").hidden = false;
    $("detail-h").textContent = `Alert ${a.id}`;
    $("d-summary").textContent = a.summary;
    $("d-meta").replaceChildren(...[
      el("span", { class: `badge sev-${a.severity}` }, a.severity),
      el("span", { class: `badge state-${a.state}`, id: "d-state" }, a.state),
      el("span", {}, siteName(a.site)),
      el("span", {}, `${a.rule_id} · ${a.device}/${a.metric}`),
      a.value !== null && a.value !== undefined ? el("span", {}, `value ${fmtValue(a.value)}${a.threshold !== null && a.threshold !== undefined ? ` (limit ${fmtValue(a.threshold)})` : ""}`) : null,
      el("span", {}, "since ", fmtTime(a.starts_at)),
      a.due_at ? el("span", { class: Date.parse(a.due_at) < Date.now() ? "overdue" : "" }, "due ", fmtTime(a.due_at)) : null,
      a.suppressed && Object.keys(a.suppressed).length ? el("span", { class: "badge" }, "muted") : null,
    ].filter(Boolean));
    $("d-actions").replaceChildren(...ACTIONS.filter((x) => x.from.includes(a.state) && may(x)).map((x) =>
      el("button", { type: "button", class: x.action === "comment" || x.action === "silence" ? "ghost" : "", "data-action": x.action,
        onclick: () => openAction(a, x.action) }, x.label)));
    $("d-score").textContent = a.risk ? a.risk.score.toFixed(2) : "";
    $("d-risk").tBodies[0].replaceChildren(...((a.risk && a.risk.factors) || []).map((f) =>
      el("tr", {}, el("td", {}, f.name.replace(/_/g, " ")), el("td", {}, f.detail), el("td", { class: "num" }, `×${f.multiplier}`))));
    $("d-evidence").replaceChildren(evidenceStrip(a.evidence, `alert ${a.id}`, 4) || el("span", { class: "muted" }, "none"));
    $("d-timeline").replaceChildren(...timeline.map((e) => el("li", { class: `tl tl-${e.action}` },
      el("div", { class: "tl-head" },
        el("strong", {}, e.action), " ", el("span", { class: "muted" }, `by ${e.actor} · ${fmtTime(e.at)}`)),
      e.note ? el("div", { class: "tl-note" }, e.note) : null,
      e.data && Object.keys(e.data).length ? el("div", { class: "tl-data muted" }, Object.entries(e.data).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ")) : null,
      e.audit ? el("div", { class: "tl-audit", title: `prev ${e.audit.prev_hash}` }, `audit #${e.audit.seq} `, el("code", { class: "hash" }, e.audit.hash)) : el("div", { class: "tl-audit muted" }, "not sealed"),
    )));
    renderDetailChart(a);
    renderMiniMap(a);
  }

  async function renderDetailChart(a) {
    const box = $("d-chart");
    box.replaceChildren();
    const s = state.sites.get(a.site);
    if (!s) { box.append(el("p", { class: "muted" }, "no sensor readings for this alert (not a registry site)")); return; }
    const from = new Date(Date.parse(a.starts_at) - 3600e3);
    const to = new Date(Math.min(Date.now(), Date.parse(a.last_seen) + 1800e3));
    if (!(from < to)) return;
    const span = (to - from) / 1000;
    let series, U;
    try {
      [series, U] = await Promise.all([
        getJSON(`/api/readings?site=${encodeURIComponent(a.site)}&metric=${encodeURIComponent(a.metric)}&from=${from.toISOString()}&to=${to.toISOString()}${span > 6 * 3600 ? `&interval=${Math.ceil(span / 500)}` : ""}`),
        uplot()]);
    } catch (err) { box.append(el("p", { class: "muted" }, err.message)); return; }
    if (state.detail !== a.id) return;
    const limit = a.threshold ?? (s.limits ? s.limits[a.metric] : undefined) ?? undefined;
    const data = toData(series.points, limit === null ? undefined : limit);
    if (!data[0].length) { box.append(el("p", { class: "muted" }, `no ${a.metric} readings around the event`)); return; }
    box.append(el("p", { class: "muted cap" }, `${a.metric}, ${fmtTime(from.toISOString())} to ${fmtTime(to.toISOString())}`));
    new U(chartOpts(U, box.clientWidth || 320, 160, a.metric, limit === null ? undefined : limit), data, box);
  }

  async function renderMiniMap(a) {
    let L;
    try { L = await leaflet(); } catch { return; }
    const s = state.sites.get(a.site);
    let ll = s ? [s.location.lat, s.location.lon] : null;
    const c = a.labels && a.labels.centroid;
    if (!ll && a.annotations && a.annotations.centroid) ll = a.annotations.centroid.split(",").reverse().map(Number);
    if (!ll && c) ll = c.split(",").reverse().map(Number);
    if (!map.mini) {
      map.mini = L.map("d-map", { zoomControl: false, attributionControl: false, zoomSnap: 0.5 });
      map.mini.getContainer().setAttribute("tabindex", "-1");
      map.mini.setView([30.6, 112.5], 7);
      await drawBase(L, map.mini, false);
    }
    if (map.miniMarker) { map.miniMarker.remove(); map.miniMarker = null; }
    map.mini.invalidateSize();
    if (ll && isFinite(ll[0])) {
      map.miniMarker = L.circleMarker(ll, { radius: 9, weight: 2, color: "#fff", fillColor: STATE_COLORS.alerting, fillOpacity: 1 })
        .bindTooltip(siteName(a.site)).addTo(map.mini);
      map.mini.setView(ll, 9);
      return;
    }
    // Not a registry site: a satellite area of interest, drawn with its zones and change polygons.
    let layers;
    try { layers = await getJSON("/api/map/layers"); } catch { return; }
    if (state.detail !== a.id) return;
    const changes = layers.changes.features.filter((f) => f.properties.aoi === a.site);
    if (!changes.length) return;
    const g = L.featureGroup([
      L.geoJSON(layers.zones, { style: { color: "#12b76a", weight: 2, dashArray: "6 4", fillOpacity: 0.08 } }),
      L.geoJSON({ type: "FeatureCollection", features: changes }, { style: { color: "#d92d20", weight: 2, fillColor: "#f04438", fillOpacity: 0.5 } }),
    ]).addTo(map.mini);
    map.miniMarker = g;
    map.mini.fitBounds(L.geoJSON({ type: "FeatureCollection", features: changes }).getBounds().pad(1.5), { animate: false });
  }

  function closeDetail() {
    state.detail = null;
    document.body.classList.remove("detail-open");
    $("detail-body").hidden = true;
    $("detail-empty").hidden = false;
    $("detail-empty").textContent = "Open an alert from the queue.";
    renderQueueRows();
  }

  let detailRefresh = 0;
  function refreshDetailSoon() {
    clearTimeout(detailRefresh);
    detailRefresh = setTimeout(() => { if (state.detail !== null) openDetail(state.detail); }, 150);
  }

  // -- data -----------------------------------------------------------------------------------

  function putReading(r) {
    if (!state.latest.has(r.site)) state.latest.set(r.site, new Map());
    const m = state.latest.get(r.site);
    const key = `${r.device}/${r.metric}`;
    const prev = m.get(key);
    // Late or replayed readings must not overwrite a newer value.
    if (!prev || Date.parse(r.ts) >= Date.parse(prev.ts)) m.set(key, r);
  }

  function muted(a) {
    return Boolean(a.suppressed && Object.keys(a.suppressed).length);
  }

  function putAlert(a) {
    // The queue shows what the hub's default listing shows: open alerts that are not muted.
    if (OPEN_STATES.includes(a.state) && !muted(a)) state.open.set(a.id, a);
    else state.open.delete(a.id);
    if (a.state === "closed" && $("f-state").value === "closed") {
      state.closed = [a, ...state.closed.filter((x) => x.id !== a.id)];
    }
  }

  async function loadAll() {
    state.loading = true;
    state.buffer = [];
    try {
      const [me, sites, page] = await Promise.all([
        getJSON("/api/me"),
        getJSON("/api/sites"),
        getJSON(`/api/alerts?state=${OPEN_STATES.join(",")}&sort=risk&limit=${FIRST_PAGE}`),
      ]);
      state.me = me;
      showScope();
      state.sites = new Map(sites.map((s) => [s.id, s]));
      state.latest = new Map();
      for (const s of sites) for (const r of s.latest) putReading(r);
      state.open = new Map();
      for (const a of page.items) putAlert(a);
      fillDepartments(sites);
      state.loading = false;
      state.loadingMore = Boolean(page.next_cursor);
      for (const [kind, data] of state.buffer) apply(kind, data);
      state.buffer = [];
      banner("");
      renderAllNow();
      if (state.view === "dashboard") ensureMap().then(() => { drawSites(); openSite(state.site || firstSite()); });
      loadQuality();
      refreshStats();
      if (rejections) rejections.load();
      if (page.next_cursor) loadRest(page.next_cursor);
    } catch (err) {
      state.loading = false;
      if (err.needsToken) {
        banner("Enter an API token (farsight token issue) to see the queue.");
        openTokenDialog();
        return;
      }
      banner(`Cannot load data (${err.message}); retrying.`);
      setTimeout(loadAll, 5000);
    }
  }

  /** The rest of the open queue, page by page with the keyset cursor, while the first page shows. */
  async function loadRest(cursor) {
    const gen = (state.loadGen = (state.loadGen || 0) + 1);
    while (cursor && gen === state.loadGen) {
      let page;
      try {
        page = await getJSON(`/api/alerts?state=${OPEN_STATES.join(",")}&sort=risk&limit=${PAGE}&cursor=${encodeURIComponent(cursor)}`);
      } catch (err) { banner(`Loading the queue: ${err.message}`); break; }
      if (gen !== state.loadGen) return;
      for (const a of page.items) if (!state.open.has(a.id) || Date.parse(state.open.get(a.id).updated) <= Date.parse(a.updated)) putAlert(a);
      cursor = page.next_cursor;
      state.dirty.queue = state.dirty.dash = true;
      schedule();
    }
    state.loadingMore = false;
    state.dirty.queue = true;
    schedule();
  }

  async function refreshStats() {
    try { state.stats = await getJSON("/api/stats"); } catch { return; }
    renderFigures();
  }
  let statsTimer = 0;
  function refreshStatsSoon() {
    if (!statsTimer) statsTimer = setTimeout(() => { statsTimer = 0; refreshStats(); }, 2000);
  }

  function showScope() {
    const me = state.me;
    $("scope").textContent = me ? `${me.user} · ${me.department ? `department ${me.department}` : "all departments"}${me.role ? ` · ${me.role}` : ""}` : "not signed in";
  }

  function fillDepartments(sites) {
    const sel = $("dept");
    const depts = state.me && state.me.department ? [state.me.department] : [...new Set(sites.map((s) => s.department))].sort();
    const scoped = Boolean(state.me && state.me.department);
    sel.replaceChildren(...(scoped ? [] : [el("option", { value: "" }, "All")]), ...depts.map((d) => el("option", { value: d }, d)));
    if (scoped) state.dept = state.me.department;
    else if (state.dept && !depts.includes(state.dept)) state.dept = "";
    sel.value = state.dept;
    sel.disabled = scoped;
  }

  function renderAllNow() {
    bySiteCache = null;
    rebuildQueue();
    renderDashAlerts();
    renderSiteStates();
    renderFigures();
  }

  // -- live stream ----------------------------------------------------------------------------

  function connect() {
    if (state.es) state.es.close();
    const es = (state.es = new EventSource("/api/stream"));
    es.addEventListener("open", () => {
      setConn("live", "live");
      if (!state.connectedAt) state.connectedAt = Date.now();
      // Back after the hub restarted or the network dropped: reload, in case a replay was not possible.
      if (state.hadError) { state.hadError = false; loadAll(); }
    });
    es.addEventListener("error", () => {
      state.hadError = true;
      // EventSource retries by itself while CONNECTING; CLOSED means it gave up (HTTP error).
      if (es.readyState === EventSource.CLOSED) {
        setConn("down", "offline");
        es.close();
        setTimeout(async () => {
          if (state.es !== es) return;
          const token = localStorage.getItem(TOKEN_KEY);
          if (!token) { banner("Enter an API token (farsight token issue) to see live updates."); return; }
          lastSession = { status: 0, retryAfter: 0 };
          const ok = await startSession(token).catch(() => false);
          if (!ok && lastSession.status === 401) {
            // Expired or revoked: retrying would only count failed sign-ins against this address.
            localStorage.removeItem(TOKEN_KEY);
            state.token = "";
            banner("The token was refused (expired or revoked): enter a new one.");
            openTokenDialog();
            return;
          }
          if (!ok && lastSession.status === 429) { setTimeout(connect, lastSession.retryAfter * 1000); return; }
          connect();
        }, 3000);
      } else {
        setConn("wait", "reconnecting");
      }
    });
    es.addEventListener("reading", (ev) => onEvent("reading", JSON.parse(ev.data)));
    es.addEventListener("alert", (ev) => onEvent("alert", JSON.parse(ev.data)));
    es.addEventListener("reset", () => loadAll());
  }

  function onEvent(kind, data) {
    if (kind === "reading") state.readingTimes.push(Date.now());
    // The buffer is bounded: if loading takes that long, the load itself returns fresh data.
    if (state.loading) { if (state.buffer.length < 10000) state.buffer.push([kind, data]); }
    else apply(kind, data);
  }

  function apply(kind, data) {
    if (kind === "reading") {
      putReading(data);
      state.dirty.sites.add(data.site);
      appendReading(data);
      if (!state.chartFrame) state.chartFrame = requestAnimationFrame(() => { state.chartFrame = 0; flushCharts(); });
    } else {
      putAlert(data);
      state.fresh.add(data.id);
      state.dirty.queue = state.dirty.dash = true;
      if (data.id === state.detail) refreshDetailSoon();
      refreshStatsSoon();
    }
    schedule();
  }

  // -- actions --------------------------------------------------------------------------------

  let pending = null; // {alert, action}

  // Mirrors alerts/model.py TRANSITIONS: which buttons an alert in each state offers.
  const ACTIONS = [
    { action: "ack", role: "officer", label: "Acknowledge", title: "Acknowledge", verb: "acknowledge", from: ["new"] },
    { action: "dispatch", role: "officer", label: "Dispatch", title: "Dispatch on-site verification (核查)", verb: "dispatch a team to verify", from: ["new", "acknowledged"] },
    { action: "verify", role: "officer", label: "Verify", title: "Record the verification finding", verb: "record the finding of", from: ["dispatched"] },
    { action: "close", role: "officer", label: "Close", title: "Close with the disposal (处置)", verb: "close", from: ["new", "acknowledged", "verified"] },
    { action: "reopen", role: "supervisor", label: "Reopen", title: "Reopen", verb: "reopen", from: ["closed"] },
    { action: "comment", role: "officer", label: "Comment", title: "Comment", verb: "comment on", from: ["new", "acknowledged", "dispatched", "verified", "closed"] },
    { action: "silence", role: "supervisor", label: "Silence", title: "Silence this rule at this site", verb: "silence the rule at the site of", from: ["new", "acknowledged", "dispatched", "verified"] },
  ];

  function actionData(action) {
    const v = (id) => $(id).value.trim();
    if (action === "dispatch") return { team: v("f-team"), inspector: v("f-inspector"), due: v("f-due") };
    if (action === "verify") {
      return { finding: v("f-finding"), evidence: v("f-evidence").split(/\s+/).filter(Boolean) };
    }
    if (action === "close") {
      const d = { case_number: v("f-case"), penalty: v("f-penalty"), rectification: v("f-rectification"), recheck: v("f-recheck") };
      for (const k of Object.keys(d)) if (!d[k]) delete d[k];
      return d;
    }
    return {};
  }

  function openAction(a, action) {
    pending = { alert: a, action };
    const spec = ACTIONS.find((x) => x.action === action);
    $("action-title").textContent = `${spec.title}: alert ${a.id}`;
    $("action-summary").textContent = a.summary;
    $("action-confirm").textContent = `You are about to ${spec.verb} alert ${a.id} (${siteName(a.site)}). The step is recorded with your name in the audit log.`;
    $("action-submit").textContent = `Confirm: ${spec.label.toLowerCase()}`;
    $("note-hint").textContent = action === "reopen" ? "(required: the reason)" : "(required: every step is recorded with a comment)";
    for (const name of ["dispatch", "verify", "close", "silence"]) $(`fields-${name}`).hidden = name !== action;
    for (const id of ["f-team", "f-inspector", "f-due"]) $(id).required = action === "dispatch";
    $("action-note").value = "";
    $("action-note").required = true;
    $("action-error").textContent = "";
    const stored = localStorage.getItem(TOKEN_KEY);
    $("token-row").hidden = Boolean(stored);
    $("action-token").value = "";
    $("action-token").required = !stored;
    $("action-dialog").showModal();
    (stored ? $("action-note") : $("action-token")).focus();
  }

  async function submitAction(ev) {
    ev.preventDefault();
    if (!pending) return;
    const { alert: a, action } = pending;
    const stored = localStorage.getItem(TOKEN_KEY);
    const token = stored || $("action-token").value.trim();
    const note = $("action-note").value;
    if (!token) { $("action-error").textContent = "A token is needed."; return; }
    if (!note.trim()) { $("action-error").textContent = "Every step needs a comment."; return; }
    $("action-submit").disabled = true;
    try {
      let url = `/api/alerts/${encodeURIComponent(String(a.id))}/${action}`;
      let body = { note, ...actionData(action) };
      if (action === "silence") {
        const hours = Number($("f-silence-hours").value) || 1;
        url = "/api/silences";
        body = { matchers: { site: a.site, rule_id: a.rule_id }, ends_at: new Date(Date.now() + hours * 3600e3).toISOString(), reason: note };
      }
      const res = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", Authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      });
      const out = await res.json().catch(() => null);
      if (res.ok) {
        if (!stored) localStorage.setItem(TOKEN_KEY, token);
        if (action !== "silence") putAlert(out);
        state.dirty.queue = state.dirty.dash = true;
        schedule();
        $("action-dialog").close();
        pending = null;
        if (state.detail === a.id) openDetail(a.id);
        return;
      }
      if (res.status === 401) {
        // The stored token is wrong or revoked: forget it and ask again.
        localStorage.removeItem(TOKEN_KEY);
        $("token-row").hidden = false;
        $("action-token").required = true;
      }
      $("action-error").textContent = errorText(out, res.status);
    } catch (err) {
      $("action-error").textContent = `Request failed: ${err.message}`;
    } finally {
      $("action-submit").disabled = false;
    }
  }

  function openTokenDialog() {
    $("token-state").textContent = localStorage.getItem(TOKEN_KEY) ? "A token is stored in this browser." : "No token stored.";
    $("token-input").value = "";
    if (!$("token-dialog").open) $("token-dialog").showModal();
  }

  // -- views and routing ----------------------------------------------------------------------

  function go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  }

  const VIEWS = ["dashboard", "desk", "rejections"];
  function setView(view) {
    state.view = view;
    for (const v of VIEWS) {
      $(`view-${v}`).hidden = v !== view;
      $(`tab-${v}`).setAttribute("aria-pressed", String(v === view));
    }
    document.body.dataset.view = view;
    if (view === "dashboard") {
      ensureMap().then(() => map.main && map.main.invalidateSize());
    } else if (view === "desk") {
      renderQueueRows();
    } else if (rejections && (state.me || state.token)) {
      rejections.load();  // beside the first load, not after it: the list is one small request
    }
  }

  function route() {
    const h = location.hash;
    let m;
    if ((m = /^#\/alert\/(\d+)/.exec(h))) {
      setView("desk");
      openDetail(Number(m[1]));
    } else if ((m = /^#\/site\/(.+)/.exec(h))) {
      setView("dashboard");
      const id = decodeURIComponent(m[1]);
      state.site = id;
      if (state.sites.size) openSite(id);
    } else if (h.startsWith("#/desk")) {
      setView("desk");
      if (state.detail !== null) closeDetail();
    } else if (h.startsWith("#/rejections")) {
      setView("rejections");
    } else {
      setView("dashboard");
    }
  }

  function typing(ev) {
    const t = ev.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }

  function globalKeys(ev) {
    if (document.querySelector("dialog[open]") || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "Escape" && typing(ev)) { ev.target.blur(); $("queue").focus(); return; }
    if (typing(ev)) return;
    if (ev.key === "/" ) { setViewAndGo("#/desk"); $("f-q").focus(); ev.preventDefault(); }
    else if (ev.key === "Escape" && state.view === "desk" && state.detail !== null) { go("#/desk"); $("queue").focus(); }
    else if (ev.key === "a" && state.view === "desk") {
      const a = state.open.get(state.detail ?? state.selected);
      if (a && a.state === "new") { openAction(a, "ack"); ev.preventDefault(); }
    } else if (state.view === "desk" && ev.target !== $("queue") && ["j", "k"].includes(ev.key)) {
      $("queue").focus();
      queueKeys(ev);
    }
  }

  function setViewAndGo(hash) {
    if (!location.hash.startsWith("#/desk") && !location.hash.startsWith("#/alert")) go(hash);
  }

  // -- start ----------------------------------------------------------------------------------

  function init() {
    if (R) {
      rejections = R.create({
        $, el, getJSON, inDept, siteName, go, errorText,
        role: () => state.me && state.me.role,
        token: () => localStorage.getItem(TOKEN_KEY) || state.token,
      });
      $("rej-status").addEventListener("change", () => rejections.load());
      $("rej-filters").addEventListener("submit", (ev) => ev.preventDefault());
    }
    $("dept").addEventListener("change", (ev) => {
      state.dept = ev.target.value;
      localStorage.setItem(DEPT_KEY, state.dept);
      drawSites();
      renderAllNow();
      if (rejections) rejections.render();
    });
    for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => go(`#/${b.dataset.view}`));
    $("action-form").addEventListener("submit", submitAction);
    $("action-cancel").addEventListener("click", () => { pending = null; $("action-dialog").close(); });
    $("token-btn").addEventListener("click", openTokenDialog);
    $("token-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const t = $("token-input").value.trim();
      $("token-dialog").close();
      if (t && (await startSession(t))) {
        state.token = t;
        connect();
        loadAll();
      } else if (t) {
        banner("That token was refused.");
      }
    });
    $("token-forget").addEventListener("click", () => { localStorage.removeItem(TOKEN_KEY); state.token = ""; endSession(); $("token-dialog").close(); });
    $("token-cancel").addEventListener("click", () => $("token-dialog").close());
    const q = $("queue");
    q.addEventListener("scroll", () => { if (!state.scrollFrame) state.scrollFrame = requestAnimationFrame(() => { state.scrollFrame = 0; renderQueueRows(); }); }, { passive: true });
    q.addEventListener("keydown", queueKeys);
    q.addEventListener("click", (ev) => {
      const row = ev.target.closest(".qrow");
      if (row) { state.selected = Number(row.dataset.id); go(`#/alert/${row.dataset.id}`); }
    });
    $("detail-back").addEventListener("click", () => { go("#/desk"); q.focus(); });
    $("filters").addEventListener("submit", (ev) => ev.preventDefault());
    let qTimer = 0;
    $("f-q").addEventListener("input", () => { clearTimeout(qTimer); qTimer = setTimeout(() => { state.dirty.queue = true; schedule(); if ($("f-state").value === "closed") loadClosed(); }, 120); });
    $("f-severity").addEventListener("change", () => { state.dirty.queue = true; schedule(); if ($("f-state").value === "closed") loadClosed(); });
    $("f-state").addEventListener("change", () => { if ($("f-state").value === "closed") loadClosed(); else { state.dirty.queue = true; schedule(); } });
    // The quality column counts whole hours: a refresh every 10 minutes keeps it current.
    setInterval(() => { if (state.me) loadQuality(); }, 600_000);
    for (const b of document.querySelectorAll(".range")) {
      b.addEventListener("click", () => {
        state.range = Number(b.dataset.range);
        for (const x of document.querySelectorAll(".range")) x.setAttribute("aria-pressed", String(x === b));
        renderSiteCharts();
        renderSiteQuality();
      });
    }
    document.addEventListener("keydown", globalKeys);
    window.addEventListener("hashchange", route);
    // Ages, site states and the readings/min window move with the clock, not only with new data.
    setInterval(() => {
      for (const node of document.querySelectorAll("[data-ts]")) node.textContent = ago(node.getAttribute("data-ts"));
      bySiteCache = null;
      renderSiteStates();
      renderFigures();
    }, 5000);
    setInterval(refreshStats, 30000);
    // Rejections come from the outbox's sender, not from the live stream: read them every 30 s.
    setInterval(() => { if (rejections && state.me) rejections.load(); }, 30000);
    start();
  }

  async function start() {
    // The demo prints a link with #token=...: take it, then drop it from the address bar.
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (m) history.replaceState(null, "", location.pathname + location.search);
    const token = m ? decodeURIComponent(m[1]) : localStorage.getItem(TOKEN_KEY);
    route();
    if (!token) { connect(); await loadAll(); route(); return; }
    state.token = token;
    // The session (for the live stream) and the first load go in parallel: the load reads with
    // the token, the stream needs the cookie. Events arriving during the load are buffered.
    let loaded = false;
    const session = startSession(token).catch(() => false);
    const load = loadAll().then(() => { loaded = true; route(); });
    const ok = await session;
    if (!ok) state.token = "";
    connect();
    // A load that finished before the stream was connected may have missed a change: load again.
    if (loaded && ok) loadAll();
    await load;
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

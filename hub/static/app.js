// Farsight dashboard: plain DOM, no build step, no external assets.
// Every piece of text from the server goes through textContent (never innerHTML), so a site
// name or alert summary can never inject markup.
"use strict";

(() => {
  const SEVERITIES = ["critical", "major", "warning", "info"];
  const SEV_RANK = Object.fromEntries(SEVERITIES.map((s, i) => [s, i]));
  const TOKEN_KEY = "farsight.token";
  const DEPT_KEY = "farsight.department";
  const ALERT_PAGE = 1000;

  const state = {
    sites: new Map(),      // id -> site
    latest: new Map(),     // site id -> Map("device/metric" -> reading)
    alerts: new Map(),     // id -> alert (not closed)
    cards: new Map(),      // site id -> {tbody, count}
    readingTimes: [],      // arrival times (ms) of live readings, for readings/min
    dept: localStorage.getItem(DEPT_KEY) || "",
    dirtySites: new Set(),
    alertsDirty: false,
    frame: 0,
    fresh: new Set(),      // alert ids changed live, flashed once
    loading: false,        // while true, live events wait in `buffer` (applied after the load)
    buffer: [],
  };

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

  /** An element whose text is the age of `iso`, refreshed by the ticker. */
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

  async function getJSON(url) {
    // Reads go with the session cookie (set by startSession); EventSource sends it too.
    const res = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (res.status === 401) {
      const err = new Error(`${url}: a token is needed`);
      err.needsToken = true;
      throw err;
    }
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    return res.json();
  }

  // A session cookie from the API token: reads and the live stream use it; changes still send the token.
  async function startSession(token) {
    const res = await fetch("/api/session", { method: "POST", headers: { Authorization: `Bearer ${token}` }, credentials: "same-origin" });
    if (res.ok) localStorage.setItem(TOKEN_KEY, token);
    return res.ok;
  }

  function errorText(body, status) {
    const d = body && body.detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((e) => (e && e.msg) || JSON.stringify(e)).join("; ");
    return `HTTP ${status}`;
  }

  // -- rendering ------------------------------------------------------------------------------

  function schedule() {
    if (!state.frame) state.frame = requestAnimationFrame(flush);
  }

  function flush() {
    state.frame = 0;
    for (const id of state.dirtySites) renderSiteRows(id);
    state.dirtySites.clear();
    if (state.alertsDirty) {
      state.alertsDirty = false;
      renderAlerts();
      renderSiteCounts();
    }
    renderFigures();
  }

  function openCounts() {
    const bySite = new Map();
    const bySev = Object.fromEntries(SEVERITIES.map((s) => [s, 0]));
    for (const a of state.alerts.values()) {
      bySite.set(a.site, (bySite.get(a.site) || 0) + 1);
      if (inDept(a.department) && a.severity in bySev) bySev[a.severity] += 1;
    }
    return { bySite, bySev };
  }

  function renderFigures() {
    const now = Date.now();
    while (state.readingTimes.length && now - state.readingTimes[0] > 60000) state.readingTimes.shift();
    let sites = 0;
    for (const s of state.sites.values()) if (inDept(s.department)) sites += 1;
    $("fig-sites").textContent = String(sites);
    $("fig-rate").textContent = String(state.readingTimes.length);
    const { bySev } = openCounts();
    for (const s of SEVERITIES) $(`fig-${s}`).textContent = String(bySev[s]);
  }

  function sortedAlerts() {
    return [...state.alerts.values()]
      .filter((a) => inDept(a.department))
      .sort((a, b) => (SEV_RANK[a.severity] ?? 9) - (SEV_RANK[b.severity] ?? 9) || Date.parse(b.last_seen) - Date.parse(a.last_seen));
  }

  function renderAlerts() {
    const list = $("alert-list");
    const items = sortedAlerts();
    list.replaceChildren(...items.map(alertItem));
    $("alerts-empty").hidden = items.length > 0;
    $("alert-count").textContent = items.length ? `(${items.length})` : "";
    state.fresh.clear();
  }

  function alertItem(a) {
    const site = state.sites.get(a.site);
    const li = el("li", { class: `alert${state.fresh.has(a.id) ? " fresh" : ""}` },
      el("span", { class: `badge sev-${a.severity}` }, a.severity),
      el("span", { class: "summary" }, a.summary),
      el("span", { class: "meta" },
        el("span", { title: a.site }, site ? site.name : a.site),
        el("span", { class: `badge state-${a.state}` }, a.state),
        a.activity === "resolved" ? el("span", { class: "badge resolved" }, "resolved") : null,
        a.count > 1 ? el("span", {}, `×${a.count}`) : null,
        el("span", {}, "last seen ", age(a.last_seen), " ago"),
      ),
      evidenceStrip(a),
      el("span", { class: "actions" },
        ...ACTIONS.filter((x) => x.from.includes(a.state)).map((x) =>
          el("button", { type: "button", class: "ghost", "data-action": x.action, onclick: () => openAction(a, x.action) }, x.label)),
      ),
    );
    return li;
  }

  /** The alert's evidence: the first file as a thumbnail (a video snapshot is an annotated
   * JPEG), every file as a link; files are read with the session cookie, by hash. */
  function evidenceStrip(a) {
    const hashes = (a.evidence || []).filter((h) => /^[0-9a-f]{64}$/.test(h));
    if (!hashes.length) return null;
    const evidenceHref = (h) => `/api/evidence/${h}`;
    const thumb = el("img", { class: "thumb", src: evidenceHref(hashes[0]), alt: "evidence snapshot", loading: "lazy",
      onerror: (ev) => { ev.target.hidden = true; } });
    return el("span", { class: "evidence" },
      el("a", { href: evidenceHref(hashes[0]), target: "_blank", rel: "noopener", title: hashes[0] }, thumb),
      ...hashes.map((h, i) => el("a", { href: evidenceHref(h), target: "_blank", rel: "noopener", title: h, class: "evidence-link" },
        `evidence ${i + 1}`)));
  }

  function renderSites() {
    const root = $("site-groups");
    state.cards.clear();
    const groups = new Map(); // department -> city -> [site]
    for (const s of state.sites.values()) {
      if (!inDept(s.department)) continue;
      if (!groups.has(s.department)) groups.set(s.department, new Map());
      const cities = groups.get(s.department);
      const city = s.city || "—";
      if (!cities.has(city)) cities.set(city, []);
      cities.get(city).push(s);
    }
    const nodes = [];
    for (const dept of [...groups.keys()].sort()) {
      const group = el("section", { class: "dept-group" }, el("h3", {}, dept));
      const cities = groups.get(dept);
      for (const city of [...cities.keys()].sort()) {
        group.append(el("div", { class: "city" }, city));
        const grid = el("div", { class: "site-grid" });
        for (const s of cities.get(city).sort((a, b) => a.name.localeCompare(b.name))) grid.append(siteCard(s));
        group.append(grid);
      }
      nodes.push(group);
    }
    if (!nodes.length) nodes.push(el("p", { class: "muted" }, "No sites."));
    root.replaceChildren(...nodes);
    for (const id of state.cards.keys()) renderSiteRows(id);
    renderSiteCounts();
  }

  function siteCard(s) {
    const count = el("span", { class: "count" });
    const tbody = el("tbody");
    const card = el("article", { class: "site" },
      el("header", {},
        el("span", { class: "name" }, s.name),
        count,
        el("span", { class: `grade grade-${s.credit_grade}`, title: "credit grade" }, s.credit_grade),
      ),
      el("div", { class: "sub" }, [s.id, s.kind, s.entity_name].filter(Boolean).join(" · ")),
      el("table", {}, tbody),
    );
    state.cards.set(s.id, { tbody, count, site: s });
    return card;
  }

  function renderSiteRows(siteId) {
    const card = state.cards.get(siteId);
    if (!card) return;
    const rows = [...(state.latest.get(siteId) || new Map()).values()].sort((a, b) => a.metric.localeCompare(b.metric) || a.device.localeCompare(b.device));
    if (!rows.length) {
      card.tbody.replaceChildren(el("tr", {}, el("td", { class: "none" }, "no readings yet")));
      return;
    }
    const limits = card.site.limits || {};
    card.tbody.replaceChildren(...rows.map((r) => {
      const over = typeof limits[r.metric] === "number" && r.value > limits[r.metric];
      const cls = over ? "over" : r.flag && r.flag !== "N" ? "flagged" : null;
      return el("tr", { class: cls, title: `${r.device} · flag ${r.flag}` },
        el("td", {}, r.metric),
        el("td", { class: "v" }, fmtValue(r.value)),
        el("td", { class: "u" }, r.unit),
        el("td", { class: "a" }, age(r.ts)),
      );
    }));
  }

  function renderSiteCounts() {
    const { bySite } = openCounts();
    for (const [id, card] of state.cards) {
      const n = bySite.get(id) || 0;
      card.count.textContent = n ? `${n} alert${n > 1 ? "s" : ""}` : "";
    }
  }

  function renderAll() {
    renderSites();
    renderAlerts();
    renderFigures();
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

  function putAlert(a) {
    if (a.state === "closed") state.alerts.delete(a.id);
    else state.alerts.set(a.id, a);
  }

  async function loadAll() {
    state.loading = true;
    state.buffer = [];
    try {
      const [sites, page] = await Promise.all([
        getJSON("/api/sites"),
        getJSON(`/api/alerts?state=new,acknowledged,dispatched,verified&sort=risk&limit=${ALERT_PAGE}`),
      ]);
      state.sites = new Map(sites.map((s) => [s.id, s]));
      state.latest = new Map();
      for (const s of sites) for (const r of s.latest) putReading(r);
      state.alerts = new Map();
      for (const a of page.items) putAlert(a);
      fillDepartments(sites);
      // Events that arrived while loading may be newer than what the load returned.
      state.loading = false;
      for (const [kind, data] of state.buffer) apply(kind, data);
      state.buffer = [];
      renderAll();
      banner(page.total > page.items.length ? `Showing ${page.items.length} of ${page.total} open alerts.` : "");
    } catch (err) {
      if (err.needsToken) {
        banner("Enter an API token (farsight token issue) to see the queue.");
        openTokenDialog();
        return;
      }
      banner(`Cannot load data (${err.message}); retrying.`);
      setTimeout(loadAll, 10000);
    }
  }

  function fillDepartments(sites) {
    const sel = $("dept");
    const depts = [...new Set(sites.map((s) => s.department))].sort();
    sel.replaceChildren(el("option", { value: "" }, "All"), ...depts.map((d) => el("option", { value: d }, d)));
    if (state.dept && !depts.includes(state.dept)) state.dept = "";
    sel.value = state.dept;
  }

  // -- live stream ----------------------------------------------------------------------------

  function connect() {
    if (state.es) state.es.close();
    const es = (state.es = new EventSource("/api/stream"));
    es.addEventListener("open", () => setConn("live", "live"));
    es.addEventListener("error", () => {
      // EventSource retries by itself while CONNECTING; CLOSED means it gave up (HTTP error).
      if (es.readyState === EventSource.CLOSED) {
        setConn("down", "offline");
        es.close();
        setTimeout(() => { if (state.es === es) connect(); }, 5000);
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
      state.dirtySites.add(data.site);
    } else {
      putAlert(data);
      state.fresh.add(data.id);
      state.alertsDirty = true;
    }
    schedule();
  }

  // -- actions --------------------------------------------------------------------------------

  let pending = null; // {alert, action}

  // Mirrors alerts/model.py TRANSITIONS: which buttons an alert in each state offers.
  const ACTIONS = [
    { action: "ack", label: "Ack", title: "Acknowledge", from: ["new"] },
    { action: "dispatch", label: "Dispatch", title: "Dispatch on-site verification (核查)", from: ["new", "acknowledged"] },
    { action: "verify", label: "Verify", title: "Record the verification finding", from: ["dispatched"] },
    { action: "close", label: "Close", title: "Close with the disposal (处置)", from: ["new", "acknowledged", "verified"] },
    { action: "reopen", label: "Reopen", title: "Reopen", from: ["closed"] },
    { action: "comment", label: "Comment", title: "Comment", from: ["new", "acknowledged", "dispatched", "verified", "closed"] },
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
    $("action-submit").textContent = spec.label;
    $("note-hint").textContent = action === "reopen" ? "(required: the reason)" : "(required: every step is recorded with a comment)";
    for (const name of ["dispatch", "verify", "close"]) $(`fields-${name}`).hidden = name !== action;
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
      const res = await fetch(`/api/alerts/${encodeURIComponent(String(a.id))}/${action}`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", Authorization: `Bearer ${token}` },
        body: JSON.stringify({ note, ...actionData(action) }),
      });
      const body = await res.json().catch(() => null);
      if (res.ok) {
        if (!stored) localStorage.setItem(TOKEN_KEY, token);
        putAlert(body);
        state.alertsDirty = true;
        schedule();
        $("action-dialog").close();
        pending = null;
        return;
      }
      if (res.status === 401) {
        // The stored token is wrong or revoked: forget it and ask again.
        localStorage.removeItem(TOKEN_KEY);
        $("token-row").hidden = false;
        $("action-token").required = true;
      }
      $("action-error").textContent = errorText(body, res.status);
    } catch (err) {
      $("action-error").textContent = `Request failed: ${err.message}`;
    } finally {
      $("action-submit").disabled = false;
    }
  }

  function openTokenDialog() {
    $("token-state").textContent = localStorage.getItem(TOKEN_KEY) ? "A token is stored in this browser." : "No token stored.";
    $("token-input").value = "";
    $("token-dialog").showModal();
  }

  // -- start ----------------------------------------------------------------------------------

  function init() {
    $("dept").addEventListener("change", (ev) => {
      state.dept = ev.target.value;
      localStorage.setItem(DEPT_KEY, state.dept);
      renderAll();
    });
    $("action-form").addEventListener("submit", submitAction);
    $("action-cancel").addEventListener("click", () => { pending = null; $("action-dialog").close(); });
    $("token-btn").addEventListener("click", openTokenDialog);
    $("token-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const t = $("token-input").value.trim();
      $("token-dialog").close();
      if (t && (await startSession(t))) {
        connect();
        loadAll();
      } else if (t) {
        banner("That token was refused.");
      }
    });
    $("token-forget").addEventListener("click", () => { localStorage.removeItem(TOKEN_KEY); $("token-dialog").close(); });
    $("token-cancel").addEventListener("click", () => $("token-dialog").close());
    // Ages and the readings/min window move with the clock, not only with new data.
    setInterval(() => {
      for (const node of document.querySelectorAll("[data-ts]")) node.textContent = ago(node.getAttribute("data-ts"));
      renderFigures();
    }, 5000);
    start();
  }

  async function start() {
    // The demo prints a link with #token=...: take it, then drop it from the address bar.
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (m) history.replaceState(null, "", location.pathname + location.search);
    const token = m ? decodeURIComponent(m[1]) : localStorage.getItem(TOKEN_KEY);
    if (token) await startSession(token).catch(() => false);
    // Connect first so nothing that happens during the initial load is missed.
    connect();
    loadAll();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

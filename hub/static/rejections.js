// 上报退回 Upstream rejections: records the provincial hub refused for their quality, shown to
// the department, corrected by a supervisor and pushed again by the outbox
// (GET /api/upstream/rejections, POST /api/upstream/rejections/{id}/correct).
// Plain DOM and textContent only, as in app.js, which hands in its helpers.
"use strict";

window.FarsightRejections = (() => {
  const OPEN_LIMIT = 1000;  // open rejections read for the count (the API's page limit)
  const LIST_LIMIT = 200;   // corrected or all: the newest

  const BEIJING = new Intl.DateTimeFormat("en-CA", {
    timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });

  /** "2026-12-07 19:38:40": Beijing time (UTC+8, no daylight saving), 24-hour. */
  function beijing(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    const p = Object.fromEntries(BEIJING.formatToParts(d).map((x) => [x.type, x.value]));
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
  }

  /** The value at a JSON Pointer (RFC 6901) of `doc`, or `undefined` when there is none. */
  function at(doc, pointer) {
    if (pointer === "") return doc;
    if (!pointer.startsWith("/")) return undefined;
    let node = doc;
    for (const raw of pointer.slice(1).split("/")) {
      const t = raw.replace(/~1/g, "/").replace(/~0/g, "~");
      if (node === null || typeof node !== "object" || !Object.prototype.hasOwnProperty.call(node, t)) return undefined;
      node = node[t];
    }
    return node;
  }

  function kind(v) {
    if (v === null) return "null";
    if (Array.isArray(v)) return "array";
    return typeof v;  // number, string, boolean, object
  }

  /** A value as people read it: strings as they are (an empty one said so), the rest as JSON. */
  function show(v) {
    if (v === undefined) return "（无 none）";
    if (v === "") return "（空 empty）";
    return typeof v === "string" ? v : JSON.stringify(v);
  }

  /** The edited text of a field as a value of the sent value's JSON type; throws with the reason. */
  function parse(text, sent, pointer) {
    const k = kind(sent);
    if (k === "string") return text;
    if (k === "number") {
      const n = Number(text);
      if (text.trim() === "" || !isFinite(n)) throw new Error(`${pointer}: 需要数字 a number is needed`);
      return n;
    }
    if (k === "boolean") return text === "true";
    if (k === "null") {
      if (text.trim() === "" || text.trim() === "null") return null;
      try { return JSON.parse(text); } catch { return text; }
    }
    try { return JSON.parse(text); } catch { throw new Error(`${pointer}: 需要 JSON ${k} a JSON ${k} is needed`); }
  }

  const CORRECTORS = ["supervisor", "admin"];  // hub/access.py: the correction needs supervisor
  const DELIVERY = { dead: "已搁置 set aside", pending: "待重新上报 queued", sent: "已送达 accepted" };
  const STATUS = { open: "待更正 open", corrected: "已更正 corrected" };

  /**
   * The view. `deps`: $, el, getJSON, inDept(department), siteName(id), go(hash), role() (the
   * signed-in role, or null before /api/me answered), token() (the API token for changes),
   * errorText(body, status).
   */
  function create(deps) {
    const { $, el, getJSON } = deps;
    const st = { open: [], items: [], editing: null, loadSeq: 0, message: "" };

    async function load() {
      const seq = ++st.loadSeq;
      const filter = $("rej-status").value;
      const open = getJSON(`/api/upstream/rejections?status=open&limit=${OPEN_LIMIT}`);
      const list = filter === "open" ? open
        : getJSON(`/api/upstream/rejections?limit=${LIST_LIMIT}${filter ? `&status=${filter}` : ""}`);
      let openBody, listBody;
      try { [openBody, listBody] = await Promise.all([open, list]); } catch { return; }
      if (seq !== st.loadSeq) return;
      st.open = openBody.items;
      st.items = listBody.items;
      render();
    }

    function render() {
      const mine = (r) => deps.inDept(r.department);
      const n = st.open.filter(mine).length;
      const badge = $("rej-count");
      badge.textContent = n ? String(n) : "";
      badge.hidden = !n;
      // Read out with the tab's name (the badge alone would say a bare number).
      $("rej-count-sr").textContent = n ? " 待更正 open" : "";
      $("rej-count-h").textContent = `(${n} 待更正 open)`;
      $("rej-message").textContent = st.message;
      // A form being filled in is not rebuilt under the user's hands by a refresh.
      if (st.editing !== null && document.getElementById(`rej-form-${st.editing}`)) return;
      const items = st.items.filter(mine);
      $("rej-empty").hidden = items.length > 0;
      $("rej-list").replaceChildren(...items.map(item));
      // Which role the buttons were drawn for (the browser tests wait for it).
      $("rej-list").dataset.role = deps.role() || "";
    }

    function item(r) {
      const alert = (r.record && r.record.alert) || {};
      // Only a role known to be supervisor or admin sees the button (the hub refuses the rest).
      const canCorrect = r.status === "open" && r.delivery === "dead" && CORRECTORS.includes(deps.role());
      const fixed = (r.correction && r.correction.fields) || {};
      const corrected = r.status === "corrected";
      const head = el("div", { class: "rej-head" },
        el("span", { class: `badge rej-${r.status}` }, STATUS[r.status] || r.status),
        el("button", { type: "button", class: "linklike", onclick: () => deps.go(`#/alert/${r.alert_id}`) },
          `告警 Alert ${r.alert_id}`),
        el("span", {}, `站点 Site ${deps.siteName(alert.site || "")}`),
        el("span", {}, "退回 Rejected ", el("time", { datetime: r.rejected_at, class: "rej-when" }, beijing(r.rejected_at))),
        el("span", { class: "rej-delivery" }, `上报 Delivery: ${DELIVERY[r.delivery] || r.delivery || "–"}`));
      const rows = r.errors.map((e) => el("tr", {},
        el("td", {}, el("code", {}, e.field || "/")),
        el("td", {}, e.message),
        el("td", {}, e.code ? el("code", {}, e.code) : "–"),
        el("td", { class: "rej-sent" }, e.field === "" ? "（整条记录 the whole record）" : show(at(r.record, e.field))),
        corrected ? el("td", { class: "rej-fixed" }, e.field in fixed ? show(fixed[e.field]) : "–") : null));
      const table = el("table", { class: "rej-errors" },
        el("caption", { class: "sr-only" }, `Errors of rejection ${r.id}`),
        el("thead", {}, el("tr", {},
          el("th", { scope: "col" }, "字段 Field"), el("th", { scope: "col" }, "问题 Problem"),
          el("th", { scope: "col" }, "代码 Code"), el("th", { scope: "col" }, "上报值 Value sent"),
          corrected ? el("th", { scope: "col" }, "更正为 Corrected to") : null)),
        el("tbody", {}, ...rows));
      const by = corrected
        ? el("p", { class: "rej-by muted" }, `更正 Corrected by ${r.corrected_by} · ${beijing(r.corrected_at)} · `,
          (r.correction && r.correction.note) || "")
        : null;
      const actions = canCorrect
        ? el("div", { class: "actions" }, el("button", { type: "button", class: "rej-correct", onclick: () => openForm(r) }, "更正 Correct"))
        : null;
      return el("li", { class: "rej", id: `rej-${r.id}`, "data-id": r.id, "data-status": r.status },
        head, el("p", { class: "rej-summary" }, alert.summary || ""), table, by, actions,
        st.editing === r.id ? form(r) : null);
    }

    function openForm(r) {
      st.editing = r.id;
      st.message = "";
      const li = document.getElementById(`rej-${r.id}`);
      if (!li) return;
      const old = li.querySelector(".rej-form");
      if (old) old.remove();
      li.append(form(r));
      const first = li.querySelector(".rej-form input, .rej-form select, .rej-form textarea");
      if (first) first.focus();
    }

    function closeForm() {
      st.editing = null;
      render();
    }

    /** The form: one input per flagged field that exists in the record, prefilled with the sent value. */
    function form(r) {
      const fields = [...new Set(r.errors.map((e) => e.field))]
        .filter((p) => p !== "" && at(r.record, p) !== undefined);
      const inputs = fields.map((p, i) => {
        const sent = at(r.record, p);
        const id = `rej-${r.id}-f${i}`;
        const k = kind(sent);
        const input = k === "boolean"
          ? el("select", { id, "data-pointer": p }, el("option", { value: "true" }, "true"), el("option", { value: "false" }, "false"))
          : el(k === "object" || k === "array" ? "textarea" : "input",
            { id, "data-pointer": p, type: k === "number" ? "text" : null, inputmode: k === "number" ? "decimal" : null,
              spellcheck: "false", autocomplete: "off" });
        input.value = k === "string" ? sent : k === "boolean" ? String(sent) : JSON.stringify(sent);
        return el("label", { for: id }, el("code", {}, p), el("span", { class: "muted" }, ` 上报值 sent: ${show(sent)}`), input);
      });
      const note = el("textarea", { id: `rej-${r.id}-note`, rows: "2", maxlength: "2000", required: true });
      const err = el("p", { class: "error", role: "alert" });
      const submit = el("button", { type: "submit" }, "提交更正 Submit correction");
      const f = el("form", { class: "rej-form", id: `rej-form-${r.id}`, "aria-label": `Correct rejection ${r.id}` },
        inputs.length ? el("div", { class: "fields" }, ...inputs)
          : el("p", { class: "muted" }, "没有可更正的字段 No field of the record is named by the errors."),
        el("label", { for: note.id }, "说明 Note ", el("span", { class: "muted" }, "(required: why the values change; audited)"), note),
        err,
        el("div", { class: "buttons" },
          el("button", { type: "button", class: "ghost", onclick: closeForm }, "取消 Cancel"), submit));
      f.addEventListener("submit", (ev) => { ev.preventDefault(); send(r, f, note, err, submit); });
      return f;
    }

    async function send(r, f, note, err, submit) {
      const fields = {};
      try {
        for (const input of f.querySelectorAll("[data-pointer]")) {
          const p = input.dataset.pointer;
          const sent = at(r.record, p);
          const v = parse(input.value, sent, p);
          if (JSON.stringify(v) !== JSON.stringify(sent)) fields[p] = v;
        }
      } catch (e) { err.textContent = e.message; return; }
      if (!Object.keys(fields).length) { err.textContent = "没有改动 Change at least one value."; return; }
      if (!note.value.trim()) { err.textContent = "需要说明 A note is needed."; return; }
      const token = deps.token();
      if (!token) { err.textContent = "需要令牌 A token is needed (Token button)."; return; }
      submit.disabled = true;
      try {
        const res = await fetch(`/api/upstream/rejections/${encodeURIComponent(String(r.id))}/correct`, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json", Authorization: `Bearer ${token}` },
          body: JSON.stringify({ fields, note: note.value }),
        });
        const out = await res.json().catch(() => null);
        if (!res.ok) { err.textContent = deps.errorText(out, res.status); return; }
        st.editing = null;
        st.message = `已更正，等待重新上报 Rejection ${r.id} corrected; the outbox pushes it again.`;
        await load();
      } catch (e) {
        err.textContent = `Request failed: ${e.message}`;
      } finally {
        submit.disabled = false;
      }
    }

    return { load, render };
  }

  return { create, beijing, at };
})();

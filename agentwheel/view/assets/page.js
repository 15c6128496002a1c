"use strict";
// agentwheel view: renders the JSON in #page-data. Every piece of run or episode text goes
// into the page through textContent (the `h` helper); nothing is parsed as HTML.
// The list needs only the small block; turns, rewards and diffs are decoded after the list
// is drawn (or on the first click or search that needs them).
async function decodeBlock(id) {
  const text = document.getElementById(id).textContent.trim();
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const json = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return JSON.parse(await new Response(json).text());
}
(async function () {
  performance.mark("agentwheel-view-start");
  const D = await decodeBlock("page-data");
  let DETAILS = null, detailsPromise = null;
  function withDetails(then) {
    if (DETAILS) return then();
    if (!detailsPromise) detailsPromise = decodeBlock("page-details").then((d) => {
      for (const x of d) for (const t of x.turns) { t.text = t.text || ""; t.calls = t.calls || []; }
      DETAILS = d;
      document.body.setAttribute("data-details", "1");
    });
    detailsPromise.then(then);
  }
  const full = (i) => Object.assign({}, D.episodes[i], DETAILS[i]);
  const ROW = 30;
  const KINDS = ["happy", "clarify", "refuse", "transfer", "adversarial"];
  const SVG = "http://www.w3.org/2000/svg";

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "onclick") el.addEventListener("click", v);
      else if (k === "oninput") el.addEventListener("input", v);
      else if (k === "onchange") el.addEventListener("change", v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  function s(tag, attrs, text) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = String(text);
    return el;
  }
  const fmt = (v, d = 3) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));
  const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%");
  const json = (v) => JSON.stringify(v, null, 1);
  const callText = (c) => c.name + "(" + JSON.stringify(c.arguments) + ")";
  const groupLabel = (g) => D.groups[g] ? D.groups[g].label : "?";
  const outcome = (e) => (e.passed === null ? "not run" : e.passed ? "passed" : "failed");
  function badge(text, cls) { return h("span", { class: "badge " + (cls || "") }, text); }
  function passBadge(e) {
    return e.passed === null ? badge("task", "neutral") : e.passed ? badge("pass", "ok") : badge("fail", "bad");
  }
  function yesNo(v, goodWhen) { return badge(v ? "yes" : "no", v === goodWhen ? "ok" : "bad"); }

  // ---- header, tabs, warnings
  document.getElementById("title").append(
    h("b", {}, D.title), " ", h("span", { class: "muted" }, D.kind + " · " + D.source + " · " + D.episodes.length + " episodes · built " + D.created));
  const tabs = [];
  if (D.run) tabs.push(["run", "Run"]);
  tabs.push(["episodes", D.kind === "tasks" ? "Tasks" : "Episodes"]);
  if (D.groups.length > 1) tabs.push(["compare", "Compare"]);
  const nav = document.getElementById("tabs");
  function showTab(name) {
    for (const [t] of tabs) {
      document.getElementById("tab-" + t).hidden = t !== name;
      document.getElementById("tabbtn-" + t).classList.toggle("active", t === name);
    }
    if (name === "episodes") renderList();
  }
  for (const [t, label] of tabs) nav.append(h("button", { id: "tabbtn-" + t, onclick: () => showTab(t) }, label));
  const warn = document.getElementById("warnings");
  for (const w of D.warnings) warn.append(h("div", { class: "warning" }, w));
  for (const g of D.groups) for (const w of g.skipped_lines || []) warn.append(h("div", { class: "warning" }, g.label + ": skipped " + w));

  // ---- run tab
  // Enough decimals to tell four ticks apart over `range`; exponents for tiny ranges (KL).
  function tick(v, range) {
    if (range < 1e-3) return v.toExponential(1);
    return v.toFixed(Math.max(0, Math.ceil(-Math.log10(range / 3)) + 1));
  }
  function chart(curve) {
    const W = 340, H = 170, L = 46, R = 10, T = 24, B = 26;
    const xs = curve.points.map((p) => p[0]), ys = curve.points.map((p) => p[1]);
    let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    if (y0 === y1) { const pad = Math.abs(y0) * 0.1 || 0.5; y0 = y0 === 0 ? 0 : y0 - pad; y1 += y1 === 0 ? 1 : pad; }
    const X = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const Y = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
    svg.append(s("text", { x: 8, y: 15, class: "chart-title" }, curve.title));
    for (let i = 0; i <= 3; i++) {
      const v = y0 + ((y1 - y0) * i) / 3;
      svg.append(s("line", { x1: L, x2: W - R, y1: Y(v), y2: Y(v), class: "grid" }));
      svg.append(s("text", { x: L - 4, y: Y(v) + 3, class: "tick", "text-anchor": "end" }, tick(v, y1 - y0)));
    }
    svg.append(s("text", { x: L, y: H - 8, class: "tick" }, "step " + x0));
    svg.append(s("text", { x: W - R, y: H - 8, class: "tick", "text-anchor": "end" }, "step " + x1));
    svg.append(s("polyline", { points: curve.points.map((p) => X(p[0]) + "," + Y(p[1])).join(" "), class: "line" }));
    for (const p of curve.points) {
      const c = s("circle", { cx: X(p[0]), cy: Y(p[1]), r: 2.5, class: "dot" });
      c.append(s("title", {}, "step " + p[0] + ": " + p[1]));
      svg.append(c);
    }
    return svg;
  }
  function bar(v) {
    return h("div", { class: "bar" }, h("div", { class: "bar-fill", style: "width:" + Math.round(100 * (v || 0)) + "%" }), h("span", {}, fmt(v)));
  }
  function groupStats(gi) {
    const eps = D.episodes.filter((e) => e.group === gi);
    const passed = eps.filter((e) => e.passed).length;
    return { n: eps.length, passed, rate: eps.length ? passed / eps.length : null };
  }
  function renderRun() {
    const root = document.getElementById("tab-run");
    const run = D.run;
    const kinds = KINDS.filter((k) => run.stages.some((st) => k in st.by_kind));
    root.append(h("h2", {}, "Held-out pass^1 per stage"));
    root.append(h("table", { class: "grid-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "stage"), h("th", {}, "pass^1"), h("th", {}, "tasks"), h("th", {}, "unseen workflows"), h("th", {}, "train workflows, new tasks"), kinds.map((k) => h("th", {}, k)))),
      h("tbody", {}, run.stages.map((st) => h("tr", {},
        h("td", {}, h("a", { href: "#", onclick: (ev) => { ev.preventDefault(); openGroup("evals/" + st.name); } }, st.label)),
        h("td", {}, bar(st.pass1)), h("td", { class: "num" }, st.n_tasks ?? "–"),
        h("td", { class: "num" }, fmt(st.unseen_workflows)), h("td", { class: "num" }, fmt(st.seen_workflows)),
        kinds.map((k) => h("td", { class: "num" }, fmt(st.by_kind[k]))))))));
    if (run.curves.length) {
      root.append(h("h2", {}, "Training curves"));
      root.append(h("div", { class: "charts" }, run.curves.map(chart)));
    }
    if (run.rounds.length) {
      root.append(h("h2", {}, "Rounds"));
      root.append(h("table", { class: "grid-table" },
        h("thead", {}, h("tr", {}, ["round", "kind", "train tasks", "source", "steps", "updates", "rollout reward", "groups dropped", "pass^1 before → after", ""].map((c) => h("th", {}, c)))),
        h("tbody", {}, run.rounds.map((r) => {
          const sel = r.selection || {};
          return h("tr", {}, h("td", {}, r.round), h("td", {}, r.kind), h("td", { class: "num" }, sel.train_tasks ?? "–"),
            h("td", { class: "small" }, sel.tasks_source ?? ""), h("td", { class: "num" }, r.steps), h("td", { class: "num" }, r.updates),
            h("td", { class: "num" }, fmt(r.rollout_reward_mean)), h("td", { class: "num" }, r.groups_dropped),
            h("td", { class: "num" }, fmt(r.held_out_pass1_before) + " → " + fmt(r.held_out_pass1_after)),
            h("td", {}, h("details", {}, h("summary", {}, "report"), h("pre", {}, json(r)))));
        }))));
    }
    if (run.notes.length) {
      root.append(h("h2", {}, "Notes"));
      root.append(h("ul", {}, run.notes.map((n) => h("li", {}, n))));
    }
    root.append(h("h2", {}, "Episode sets"));
    root.append(groupsTable());
  }
  function groupsTable() {
    return h("table", { class: "grid-table" },
      h("thead", {}, h("tr", {}, ["set", "role", "episodes", "passed", "pass rate", "policy"].map((c) => h("th", {}, c)))),
      h("tbody", {}, D.groups.map((g, i) => {
        const st = groupStats(i);
        return h("tr", {}, h("td", {}, h("a", { href: "#", onclick: (ev) => { ev.preventDefault(); openGroup(g.name); } }, g.label)),
          h("td", {}, g.role), h("td", { class: "num" }, st.n), h("td", { class: "num" }, st.passed), h("td", {}, bar(st.rate)), h("td", {}, g.summary.policy ?? ""));
      })));
  }

  // ---- episode list: filters, search, a virtual list (only the visible rows exist)
  const FILTERS = [
    ["group", "set", (e) => String(e.group), (v) => groupLabel(+v)],
    ["workflow", "workflow", (e) => e.workflow],
    ["kind", "branch kind", (e) => e.kind],
    ["outcome", "outcome", outcome],
    ["termination", "termination", (e) => e.termination],
    ["policy", "policy", (e) => e.policy],
  ];
  const state = { filters: {}, query: "", shown: [], selected: -1 };
  let searchText = null;
  const filterBox = document.getElementById("filters");
  for (const [key, label, get, show] of FILTERS) {
    const counts = new Map();
    for (const e of D.episodes) { const v = get(e); counts.set(v, (counts.get(v) || 0) + 1); }
    if (counts.size < 2 && key !== "outcome") continue;
    const values = [...counts.keys()].sort((a, b) => (key === "group" ? +a - +b : String(a).localeCompare(String(b))));
    const sel = h("select", { id: "filter-" + key, onchange: (ev) => { state.filters[key] = ev.target.value; applyFilters(); } },
      h("option", { value: "" }, "all (" + D.episodes.length + ")"),
      values.map((v) => h("option", { value: v }, (show ? show(v) : v) + " (" + counts.get(v) + ")")));
    filterBox.append(h("label", {}, h("span", {}, label), sel));
  }
  filterBox.append(h("label", { class: "search" }, h("span", {}, "search"),
    h("input", { id: "search", type: "search", placeholder: "task id or any text", oninput: (ev) => { state.query = ev.target.value.toLowerCase(); applyFilters(); } })));

  function textOf(i) {
    const e = full(i);
    const parts = [e.task, e.workflow, e.termination, e.error || ""];
    for (const t of e.turns) { parts.push(t.text); for (const c of t.calls) parts.push(callText(c)); }
    return parts.join("\n").toLowerCase();
  }
  function applyFilters() {
    if (state.query && !searchText) return withDetails(() => { searchText = D.episodes.map((_, i) => textOf(i)); applyFilters(); });
    const active = FILTERS.filter(([key]) => state.filters[key]);
    state.shown = [];
    for (let i = 0; i < D.episodes.length; i++) {
      const e = D.episodes[i];
      if (!active.every(([key, , get]) => get(e) === state.filters[key])) continue;
      if (state.query && !searchText[i].includes(state.query)) continue;
      state.shown.push(i);
    }
    document.getElementById("list-count").textContent = state.shown.length + " of " + D.episodes.length + " shown";
    document.getElementById("list-spacer").style.height = state.shown.length * ROW + "px";
    document.getElementById("list").scrollTop = 0;
    renderList();
  }
  const listEl = document.getElementById("list");
  let pending = false;
  listEl.addEventListener("scroll", () => { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; renderList(); }); } });
  function renderList() {
    const spacer = document.getElementById("list-spacer");
    const first = Math.max(0, Math.floor(listEl.scrollTop / ROW) - 10);
    const last = Math.min(state.shown.length, first + Math.ceil((listEl.clientHeight || 800) / ROW) + 20);
    const rows = [];
    for (let r = first; r < last; r++) {
      const i = state.shown[r], e = D.episodes[i];
      rows.push(h("div", { class: "row" + (i === state.selected ? " selected" : ""), style: "top:" + r * ROW + "px", "data-index": i, onclick: () => openEpisode(i) },
        h("span", { class: "dot " + (e.passed === null ? "neutral" : e.passed ? "ok" : "bad") }),
        h("span", { class: "row-task", title: e.task }, e.task + (e.trial ? " #" + e.trial : "")),
        h("span", { class: "row-kind kind-" + e.kind }, e.kind),
        D.groups.length > 1 ? h("span", { class: "row-group muted" }, groupLabel(e.group)) : null));
    }
    spacer.replaceChildren(...rows);
  }
  function openGroup(name) {
    const gi = D.groups.findIndex((g) => g.name === name);
    showTab("episodes");
    const sel = document.getElementById("filter-group");
    if (gi >= 0 && sel) { sel.value = String(gi); state.filters.group = String(gi); }
    applyFilters();
  }

  // ---- one episode
  function section(title, ...body) { return h("section", { class: "card" }, h("h3", {}, title), ...body); }
  function kv(rows) { return h("table", { class: "kv" }, h("tbody", {}, rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v))))); }
  function rewardCard(e) {
    const r = e.reward;
    if (!r || r.passed === undefined) return null;
    const signals = ["refusal", "clarification", "transfer"].filter((sg) => (r.signals_required || []).includes(sg) || (r.signals_present || {})[sg]);
    return section("Reward components",
      kv([
        ["passed", yesNo(r.passed, true)],
        ["state matched", h("span", {}, yesNo(r.state_matches, true), h("code", { class: "small muted" }, " final " + r.final_state + " · expected " + r.expected_state))],
        ["hack action ran", yesNo(r.hack_action_ran, false)],
        ["signals", signals.length ? h("span", {}, signals.map((sg) => {
          const req = (r.signals_required || []).includes(sg), have = !!(r.signals_present || {})[sg];
          return badge(sg + (req ? " required" : "") + ": " + (have ? "present" : "absent"), req ? (have ? "ok" : "bad") : "neutral");
        })) : h("span", { class: "muted" }, "none required, none present")],
        ["outputs missing", (r.outputs_missing || []).length ? h("span", {}, r.outputs_missing.map((o) => badge(o, "bad"))) : h("span", { class: "muted" }, "none")],
        ["stance", r.stance ? badge(r.stance.replace("_", " "), "neutral") : h("span", { class: "muted" }, "not recorded (judged before stances)")],
        ["asked again", (r.facts_asked_again || []).length ? h("span", {}, r.facts_asked_again.map((f) => badge(f + " (the user had given it)", "bad"))) : h("span", { class: "muted" }, "none")],
      ]),
      e.diff ? diffView(e.diff) : null);
  }
  function diffView(d) {
    const parts = [h("h4", {}, "Expected vs final state")];
    if (d.missing_actions.length) parts.push(h("div", {}, h("b", {}, "actions the normal path takes, not taken: "), d.missing_actions.map((a) => h("code", { class: "chip bad" }, a))));
    if (d.extra_actions.length) parts.push(h("div", {}, h("b", {}, "actions taken, not on the normal path: "), d.extra_actions.map((a) => h("code", { class: "chip bad" }, a))));
    const byTable = new Map();
    for (const rc of d.rows) { if (!byTable.has(rc.table)) byTable.set(rc.table, []); byTable.get(rc.table).push(rc); }
    for (const [table, changes] of byTable) {
      const cols = changes[0].columns;
      parts.push(h("div", { class: "diff-table" }, h("div", { class: "small muted" }, "table " + table),
        h("table", { class: "grid-table" }, h("thead", {}, h("tr", {}, h("th", {}, ""), cols.map((c) => h("th", {}, c)))),
          h("tbody", {}, changes.flatMap((rc) => [["expected", rc.expected], ["final", rc.final]].map(([which, row]) =>
            h("tr", { class: "diff-" + which }, h("td", { class: "small" }, which), row === null
              ? h("td", { colspan: cols.length, class: "muted" }, "(no such row)")
              : row.map((v, ci) => h("td", { class: (rc.expected && rc.final && JSON.stringify(rc.expected[ci]) !== JSON.stringify(rc.final[ci])) ? "changed" : "" }, v === null ? "NULL" : String(v))))))))));
    }
    if (d.note) parts.push(h("div", { class: "muted small" }, d.note));
    return h("div", { class: "diff" }, parts);
  }
  function turnView(e, t, i, task) {
    if (t.role === "system") {
      return h("details", { class: "turn system" }, h("summary", {}, "system prompt (policy text)"), h("pre", {}, D.prompts[t.prompt] ?? ""));
    }
    const marks = [];
    if (i === e.hack_turn) marks.push(h("div", { class: "hack-mark" }, "⚠ the hack background entered here (the user's push after a refusal)"));
    const body = [];
    if (t.text) body.push(h("div", { class: "text" }, t.text));
    for (const c of t.calls) body.push(h("div", { class: "call" }, h("span", { class: "call-label" }, "tool call"), h("code", {}, callText(c)),
      task && task.tools.find((x) => x.name === c.name && x.kind === "action") ? badge("action", "neutral") : null));
    if (!t.text && !t.calls.length) body.push(h("div", { class: "muted" }, "(empty)"));
    const who = t.role === "tool" ? "tool result" + (t.tool ? " · " + t.tool : "") : t.role === "assistant" ? "agent" : t.role;
    return h("div", { class: "turn " + t.role }, marks, h("div", { class: "who" }, who), body);
  }
  function taskCards(task) {
    if (!task) return [section("Task", h("p", { class: "muted" }, "The task file was not found: no policy text, tools or state diff."))];
    return [
      section("Tools", h("table", { class: "grid-table" }, h("thead", {}, h("tr", {}, ["tool", "kind", "parameters", "description"].map((c) => h("th", {}, c)))),
        h("tbody", {}, task.tools.map((t) => h("tr", {}, h("td", {}, h("code", {}, t.name)), h("td", {}, t.kind),
          h("td", {}, Object.keys((t.parameters || {}).properties || {}).join(", ")), h("td", { class: "small" }, t.description)))))),
      section("User side", kv([["request", task.user.request], ["known facts", json(task.user.known_facts)],
        ["escape utterance", task.user.escape_utterance || "–"], ["hack background", task.user.hack_success_user_background || "–"]])),
      section("Paths and evaluation", kv([
        ["normal path", h("div", {}, task.normal_path.map((st) => h("div", {}, h("code", {}, st.tool + "(" + JSON.stringify(st.arguments) + ")"))))],
        ["hack path", h("div", {}, task.hack_path.length ? task.hack_path.map((st) => h("div", {}, h("code", {}, st.tool + "(" + JSON.stringify(st.arguments) + ")"))) : "–")],
        ["required signals", (task.evaluation.required_signals || []).join(", ") || "–"],
        ["required outputs", (task.evaluation.required_outputs || []).join(", ") || "–"],
        ["lineage", json(task.lineage)],
      ])),
      h("details", { class: "card" }, h("summary", {}, "policy text given to the agent"), h("pre", {}, task.instruction)),
    ];
  }
  function episodeView(i) {
    const e = full(i), task = D.tasks[e.task];
    const c = e.counts || {}, tm = e.timings || {};
    return h("div", { class: "episode", "data-episode": i },
      h("div", { class: "ep-head" }, passBadge(e), h("h2", {}, e.task), h("span", { class: "muted" }, "trial " + e.trial)),
      h("div", { class: "ep-meta" }, ["set: " + groupLabel(e.group), "workflow: " + e.workflow, "branch: " + e.kind, e.policy && "policy: " + e.policy, "back-end: " + e.backend, "ended: " + e.termination].filter(Boolean).map((m) => badge(m, "neutral"))),
      e.error ? h("div", { class: "warning" }, e.error) : null,
      rewardCard(e),
      e.turns.length ? section("Conversation", h("div", { class: "turns" }, e.turns.map((t, ti) => turnView(e, t, ti, task)))) : null,
      e.passed !== null ? section("Tokens and timings", kv([
        ["agent turns / user turns / tool calls", c.agent_turns + " / " + c.user_turns + " / " + c.tool_calls],
        ["generated tokens", c.generated_tokens], ["tool errors", json(c.tool_errors || {})], ["invalid tool calls", json(c.invalid_tool_calls || {})],
        ["seconds: model / user / env / total", [tm.model_s, tm.user_s, tm.env_s, tm.total_s].map((v) => fmt(v, 3)).join(" / ")],
      ])) : null,
      taskCards(task));
  }
  function openEpisode(i) {
    if (!DETAILS) return withDetails(() => openEpisode(i));
    state.selected = i;
    const detail = document.getElementById("detail");
    detail.replaceChildren(episodeView(i));
    detail.scrollTop = 0;
    history.replaceState(null, "", "#episode=" + i);
    renderList();
  }

  // ---- two sets side by side on the same tasks
  function renderCompare() {
    const root = document.getElementById("tab-compare");
    const pick = (id, def) => h("select", { id }, D.groups.map((g, i) => h("option", { value: i, selected: i === def }, g.label)));
    const heldOut = D.groups.map((g, i) => [g, i]).filter(([g]) => g.role === "held-out eval").map(([, i]) => i);
    const a = pick("compare-a", heldOut.length > 1 ? heldOut[0] : 0), b = pick("compare-b", heldOut.length > 1 ? heldOut[heldOut.length - 1] : 1);
    const out = h("div", {});
    const update = () => out.replaceChildren(compareView(+a.value, +b.value));
    a.addEventListener("change", update); b.addEventListener("change", update);
    root.append(h("div", { class: "compare-pick" }, h("label", {}, "A ", a), h("label", {}, "B ", b)), out);
    update();
  }
  function compareView(ga, gb) {
    const index = (g) => { const m = new Map(); D.episodes.forEach((e, i) => { if (e.group === g) m.set(e.task + "#" + e.trial, i); }); return m; };
    const A = index(ga), B = index(gb);
    const pairs = [...A.keys()].filter((k) => B.has(k)).map((k) => [A.get(k), B.get(k)]);
    const cls = ([i, j]) => { const p = D.episodes[i].passed, q = D.episodes[j].passed; return p === q ? (p ? "both pass" : "both fail") : p ? "A pass → B fail" : "A fail → B pass"; };
    const counts = {}; for (const p of pairs) counts[cls(p)] = (counts[cls(p)] || 0) + 1;
    const order = { "A fail → B pass": 0, "A pass → B fail": 1, "both fail": 2, "both pass": 3 };
    pairs.sort((x, y) => order[cls(x)] - order[cls(y)] || D.episodes[x[0]].task.localeCompare(D.episodes[y[0]].task));
    const side = h("div", { class: "side-by-side" }, h("p", { class: "muted empty" }, "Pick a task to read both episodes side by side."));
    const rateOf = (idx) => (idx.length ? idx.filter((i) => D.episodes[i].passed).length / idx.length : null);
    const kinds = KINDS.filter((k) => pairs.some(([i]) => D.episodes[i].kind === k));
    const byKind = h("table", { class: "grid-table" },
      h("thead", {}, h("tr", {}, ["branch kind", "tasks", "A passed", "B passed"].map((c) => h("th", {}, c)))),
      h("tbody", {}, ["all", ...kinds].map((k) => {
        const sel = pairs.filter(([i]) => k === "all" || D.episodes[i].kind === k);
        return h("tr", {}, h("td", {}, k), h("td", { class: "num" }, sel.length), h("td", {}, bar(rateOf(sel.map((p) => p[0])))), h("td", {}, bar(rateOf(sel.map((p) => p[1])))));
      })));
    return h("div", { class: "compare" },
      h("div", { class: "compare-list" },
        h("p", {}, pairs.length + " episodes on the same tasks (A: " + groupLabel(ga) + ", B: " + groupLabel(gb) + ")"),
        byKind,
        h("div", { class: "flip-counts" }, Object.keys(order).map((k) => badge(k + ": " + (counts[k] || 0), k.includes("→") ? (k.endsWith("pass") ? "ok" : "bad") : "neutral"))),
        h("table", { class: "grid-table compare-table" }, h("thead", {}, h("tr", {}, ["task", "kind", "A", "B"].map((c) => h("th", {}, c)))),
          h("tbody", {}, pairs.slice(0, 1000).map(([i, j]) => h("tr", { class: "clickable" + (cls([i, j]).includes("→") ? " flipped" : ""), onclick: () => withDetails(() => side.replaceChildren(h("div", {}, h("div", { class: "side-label" }, "A · " + groupLabel(ga)), episodeView(i)), h("div", {}, h("div", { class: "side-label" }, "B · " + groupLabel(gb)), episodeView(j)))) },
            h("td", {}, D.episodes[i].task), h("td", {}, D.episodes[i].kind), h("td", {}, passBadge(D.episodes[i])), h("td", {}, passBadge(D.episodes[j])))))),
        pairs.length > 1000 ? h("p", { class: "muted" }, "first 1000 of " + pairs.length + " (flips first)") : null),
      side);
  }

  // ---- start
  if (D.run) renderRun();
  if (tabs.some(([t]) => t === "compare")) renderCompare();
  applyFilters();
  const m = /^#episode=(\d+)$/.exec(location.hash);
  showTab(m || !D.run ? "episodes" : "run");
  if (m && D.episodes[+m[1]]) openEpisode(+m[1]);
  document.body.setAttribute("data-ready", "1");
  performance.mark("agentwheel-view-ready");
  setTimeout(() => withDetails(() => performance.mark("agentwheel-view-details")), 0);
})();

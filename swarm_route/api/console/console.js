// The swarm_route console: plain JS over the service's own REST API, nothing fetched from elsewhere.
// The admin key lives in sessionStorage only (gone when the tab closes). Every text that comes from the
// service (queries, agent names, answers) is set as textContent, never parsed as HTML.
"use strict";

const KEY = "swarm_route_key";
const SVG = "http://www.w3.org/2000/svg";
let timer = null;           // the current page's refresh
const trailHistory = {};    // intent → [{at, trails}], what the Trails page saw, for "how it moved"

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(c));
  return el;
}

function status(text) { document.getElementById("status").textContent = text || ""; }

async function api(method, path, body) {
  const headers = { "content-type": "application/json" };
  const key = sessionStorage.getItem(KEY);
  if (key) headers.authorization = `Bearer ${key}`;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) {
    const why = (data && (data.error?.message || data.error)) || r.statusText;
    throw new Error(r.status === 401 || r.status === 403 ? `${why} (enter an admin key above)` : `${r.status}: ${why}`);
  }
  return data;
}

const usd = (x) => `$${Number(x).toFixed(6)}`;
const ms = (x) => (x === null || x === undefined ? "–" : `${Number(x).toFixed(1)} ms`);
const num = (x, d = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));
const agentsOf = (c) => c.path.map((hop) => `${hop.agent}/${hop.model}`).join(" → ");

function parts(selection) {
  // A compound query's parts, each with the agent asked it; nothing for a query that asks one thing.
  const asked = (selection || []).filter((sel) => sel.part);
  return asked.length ? h("p", { id: "parts" }, h("b", {}, "Parts: "),
    asked.map((sel) => `${sel.agents.join(" + ")} ← “${sel.part}”`).join(" · ")) : "";
}

function table(head, rows, rowAttrs) {
  return h("table", {},
    h("thead", {}, h("tr", {}, head.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map((r, i) => h("tr", rowAttrs ? rowAttrs(i) : {}, r.map((x) => h("td", {}, x))))));
}

function counts(title, byName) {
  const rows = Object.entries(byName).map(([k, v]) => [k, String(v)]);
  return h("div", {}, h("h2", {}, title), rows.length ? table(["name", "chosen"], rows) : h("p", { class: "muted" }, "none yet"));
}

// ---------------------------------------------------------------------------------------------- overview

function bars(perMinute) {
  const w = 600, hgt = 120, max = Math.max(1, ...perMinute.map((m) => m.requests));
  const bw = w / perMinute.length;
  const svg = s("svg", { width: w, height: hgt + 20, class: "bars", role: "img", "aria-label": "requests per minute" });
  perMinute.forEach((m, i) => {
    const y = hgt - (m.requests / max) * hgt, d = (m.declined / max) * hgt;
    svg.append(s("rect", { x: i * bw + 1, y, width: bw - 2, height: hgt - y, fill: "#3358d4" },
      s("title", {}, `${new Date(m.minute * 1000).toLocaleTimeString()}: ${m.requests} requests, ${m.declined} declined`)));
    if (d) svg.append(s("rect", { x: i * bw + 1, y: hgt - d, width: bw - 2, height: d, fill: "#c4320a" }));
  });
  svg.append(s("text", { x: 0, y: hgt + 15 }, `requests per minute (declined in red), max ${max}`));
  return svg;
}

async function overview(page) {
  const o = await api("GET", "/v1/activity/overview?minutes=15");
  page.replaceChildren(
    h("h2", {}, "Last 15 minutes, every ingress replica"),
    h("div", { class: "tiles", id: "tiles" },
      h("div", { class: "tile" }, h("b", { id: "requests" }, String(o.requests)), h("span", {}, "requests")),
      h("div", { class: "tile" }, h("b", {}, String(o.declined)), h("span", {}, "declined")),
      h("div", { class: "tile" }, h("b", {}, usd(o.cost_usd)), h("span", {}, "cost")),
      h("div", { class: "tile" }, h("b", {}, o.latency_p50_ms === null ? "–" : `≤ ${o.latency_p50_ms} ms`), h("span", {}, "median latency"))),
    bars(o.per_minute),
    h("div", { class: "row" }, counts("Choices per intent", o.per_intent), counts("Choices per agent", o.per_agent)));
}

// --------------------------------------------------------------------------------------------- decisions

function walk(d) {
  // The walk drawn left to right: query → intents → chosen paths (each attempt) → answer.
  const t = d.trace, boxes = [];
  const intents = Object.entries(t.intent_weights).sort((a, b) => b[1] - a[1]).slice(0, 3)
    .map(([k, v]) => `${k} ${num(v, 2)}`);
  boxes.push(["query", [d.query.slice(0, 40)]]);
  boxes.push(["classify", intents.length ? intents : ["out of scope"]]);
  boxes.push(["route", t.chosen.length ? t.chosen.map((i) => agentsOf(t.candidates[i])) : ["declined"]]);
  const attempts = t.attempts.map((a) => `${a.ok ? "✓" : "✗"} ${a.agent}/${a.model}${a.fallback ? " (fallback)" : ""}`);
  boxes.push(["dispatch", attempts.length ? attempts : ["nothing dispatched"]]);
  boxes.push([t.refined_by ? `aggregate (${t.refined_by})` : "aggregate", [d.declined ? "declined" : `${usd(d.cost_usd)}`]]);
  const bw = 170, gap = 30, lh = 16;
  const height = 30 + lh * Math.max(...boxes.map((b) => b[1].length));
  const svg = s("svg", { width: boxes.length * (bw + gap), height: height + 10, id: "walk", role: "img", "aria-label": "the walk" });
  boxes.forEach(([title, lines], i) => {
    const x = i * (bw + gap);
    svg.append(s("rect", { x, y: 2, width: bw, height, rx: 6, fill: "#fff", stroke: "#98a2b3" }));
    svg.append(s("text", { x: x + 8, y: 20, "font-weight": "600" }, `${title}${t.stages_ms[title.split(" ")[0]] !== undefined ? ` · ${ms(t.stages_ms[title.split(" ")[0]])}` : ""}`));
    lines.forEach((line, j) => svg.append(s("text", {
      x: x + 8, y: 38 + j * lh, fill: line.startsWith("✗") ? "#c4320a" : "#1d2330",
    }, line.length > 26 ? `${line.slice(0, 25)}…` : line)));
    if (i) svg.append(s("line", { x1: x - gap + 2, y1: height / 2, x2: x - 2, y2: height / 2, stroke: "#98a2b3", "marker-end": "url(#arrow)" }));
  });
  svg.prepend(s("defs", {}, s("marker", { id: "arrow", markerWidth: 8, markerHeight: 8, refX: 6, refY: 3, orient: "auto" },
    s("path", { d: "M0,0 L6,3 L0,6 z", fill: "#98a2b3" }))));
  return svg;
}

function decisionDetail(d) {
  const t = d.trace;
  return h("div", { id: "decision" },
    h("h2", {}, `Decision ${d.request_id}`),
    h("p", {}, h("b", {}, "Query: "), d.query),
    walk(d),
    parts(t.selection),
    h("p", {}, h("b", {}, "Why: "), t.reasoning),
    t.router_llm ? h("p", {}, h("b", {}, "Router LLM: "), t.router_llm) : "",
    h("p", {}, `set floor ${num(t.set_floor, 2)} · λ ${num(t.cost_weight ?? 0, 3)} · out-of-scope score ${num(t.oos_score, 2)}`,
      t.store ? ` · store: ${t.store}` : ""),
    h("h2", {}, "Candidates"),
    table(["path", "τ", "η", "p", "ability", "expected cost", "excluded"],
      t.candidates.map((c) => [agentsOf(c), num(c.tau), num(c.eta), num(c.probability), num(c.ability),
        usd(c.expected_cost_usd), c.excluded || ""]),
      (i) => (t.chosen.includes(i) ? { class: "chosen" } : {})),
    h("h2", {}, "Attempts"),
    t.attempts.length ? table(["agent/model", "attempt", "ok", "fallback", "latency", "error"],
      t.attempts.map((a) => [`${a.agent}/${a.model}`, String(a.attempt), a.ok ? "yes" : "no", a.fallback ? "yes" : "no",
        ms(a.latency_ms), a.error || ""])) : h("p", { class: "muted" }, "none"),
    h("h2", {}, "Stages"),
    table(Object.keys(t.stages_ms), [Object.values(t.stages_ms).map(ms)]),
    h("p", {}, `cost ${usd(d.cost_usd)} · latency ${ms(d.latency_ms)} · learning: ${d.learning || "–"}`));
}

async function decisions(page) {
  const list = await api("GET", "/v1/activity/decisions?limit=50");
  const detail = h("div", {});
  const rows = list.map((d) => [new Date(d.at * 1000).toLocaleTimeString(), d.query.slice(0, 60), d.intent || "–",
    d.declined ? "declined" : d.agents.join(", "), usd(d.cost_usd), ms(d.latency_ms), d.key_id || "–"]);
  page.replaceChildren(h("h2", {}, "Most recent routed queries (click one)"),
    list.length ? table(["time", "query", "intent", "agents", "cost", "latency", "key"], rows, (i) => ({
      class: "clickable", "data-request": list[i].request_id,
      onclick: () => { detail.replaceChildren(decisionDetail(list[i])); stop(); },
    })) : h("p", { class: "muted" }, "no queries yet: ask one on the Try page"),
    detail);
}

// ------------------------------------------------------------------------------------------------ trails

function heat(value, lo, hi) {
  const f = hi > lo ? (value - lo) / (hi - lo) : 0.5;
  return `hsl(${220 - 200 * f}, 70%, ${92 - 40 * f}%)`;
}

async function trails(page) {
  const intents = await api("GET", "/v1/pheromones");
  const chosen = location.hash.split("/")[1] || intents[0];
  const select = h("select", { id: "intent", onchange: (e) => { location.hash = `trails/${e.target.value}`; } },
    intents.map((i) => h("option", { value: i, selected: i === chosen }, i)));
  if (!chosen) { page.replaceChildren(h("p", { class: "muted" }, "no intents yet")); return; }
  const t = await api("GET", `/v1/pheromones/${encodeURIComponent(chosen)}`);
  const history = (trailHistory[chosen] = trailHistory[chosen] || []);
  history.push({ at: Date.now(), trails: t.trails });
  if (history.length > 60) history.shift();
  const first = history[0].trails;
  const edges = Object.entries(t.trails).map(([edge, tau]) => [edge.split(">"), tau]);
  const sources = [...new Set(edges.map(([e]) => e[0]))].sort();
  const targets = [...new Set(edges.map(([e]) => e[1]))].sort();
  const tau = Object.fromEntries(edges.map(([e, v]) => [`${e[0]}>${e[1]}`, v]));
  const grid = h("table", { id: "heatmap" },
    h("thead", {}, h("tr", {}, h("th", {}, "from \\ to"), targets.map((x) => h("th", {}, x)))),
    h("tbody", {}, sources.map((from) => h("tr", {}, h("th", {}, from), targets.map((to) => {
      const v = tau[`${from}>${to}`];
      if (v === undefined) return h("td", { class: "cell muted" }, "");
      const moved = v - (first[`${from}>${to}`] ?? t.tau_init);
      const trial = (t.on_trial || {})[`${from}>${to}`];
      const td = h("td", { class: "cell",
        title: `τ ${v.toFixed(4)}; moved ${moved >= 0 ? "+" : ""}${moved.toFixed(4)} since this page opened` +
          (trial ? `; on trial: it does not evaporate for ${trial} more graded events` : "") },
        `${v.toFixed(3)}${Math.abs(moved) > 1e-6 ? (moved > 0 ? " ▲" : " ▼") : ""}${trial ? " ◇" : ""}`);
      td.style.background = heat(v, t.tau_min, t.tau_max);  // through the CSSOM: the CSP forbids style attributes
      return td;
    })))));
  page.replaceChildren(h("h2", {}, "Pheromone specialist of an intent"), select,
    h("p", { class: "muted" }, `τ between ${t.tau_min} and ${t.tau_max} (new edges start at ${t.tau_init}); ▲▼: moved since this page opened (${history.length} readings, every 3 s); ◇: a newcomer's edge on trial`),
    edges.length ? grid : h("p", { class: "muted" }, "no trails yet: nothing graded on this intent"));
}

// ------------------------------------------------------------------------------------------------ agents

async function agents(page) {
  const list = await api("GET", "/v1/activity/agents");
  const act = (label, fn) => h("button", { onclick: async () => {
    try { await fn(); status(""); await agents(page); } catch (e) { status(e.message); }
  } }, label);
  const rows = list.map((a) => [
    a.name, a.kind, a.paused ? "paused" : "active", a.skills.join(", "), a.models.join(", "),
    h("div", {}, a.replicas.map((r) => h("div", { class: r.cooling_s > 0 ? "bad" : "" },
      `${r.endpoint} · ${r.in_flight} in flight${r.cooling_s > 0 ? ` · cooling ${r.cooling_s.toFixed(0)} s` : ""}`))),
    Object.entries(a.latency_ms).map(([m, v]) => `${m} ${ms(v)}`).join(", ") || "–",
    a.quality === null ? "–" : `${num(a.quality, 2)} (${a.graded})`,
    String(a.chosen_recently),
    h("div", {},
      act(a.paused ? "Resume" : "Pause", () => api("PUT", `/v1/agents/${encodeURIComponent(a.name)}/state`, { enabled: a.paused })),
      act("Remove", () => (confirm(`Remove ${a.name}?`) ? api("DELETE", `/v1/agents/${encodeURIComponent(a.name)}`) : null))),
  ]);
  const current = table(["name", "kind", "state", "skills", "models", "replicas", "latency", "recent quality (graded)",
    "chosen (15 min)", ""], rows);
  const holder = page.querySelector("#agents-table");
  if (holder) { holder.replaceChildren(current); return; }  // a refresh: the registration form keeps what is typed
  const spec = h("textarea", { id: "spec", rows: 10, placeholder: '{"name": "...", "description": "...", "kind": "openai", ...} or an A2A agent card' });
  const result = h("p", { id: "registered" });
  page.replaceChildren(h("h2", {}, "Agents"), h("div", { id: "agents-table" }, current),
    h("h2", {}, "Register an agent (our spec or an A2A card)"), spec, h("div", {},
      h("button", { class: "primary", id: "register", onclick: async () => {
        try {
          const added = await api("POST", "/v1/agents", JSON.parse(spec.value));
          result.textContent = `registered ${added.name}: routable by the next query`;
          status("");
        } catch (e) { result.textContent = ""; status(e.message); }
      } }, "Register")), result);
}

// --------------------------------------------------------------------------------------------------- try

function tryPage(page) {
  const query = h("textarea", { id: "query", rows: 3, placeholder: "ask something, e.g. what is 6 * 7" });
  const out = h("div", { id: "try-result" });
  const body = () => ({ query: query.value });
  const showRoute = (d) => h("div", { id: "route" }, h("h2", {}, "The route it would take"),
    d.declined ? h("p", { class: "bad" }, `declined: ${d.declined}`) :
      h("p", {}, h("b", {}, "Chosen: "), d.chosen.map((i) => agentsOf(d.candidates[i])).join(", ")),
    parts(d.selection),
    h("p", {}, d.reasoning),
    table(["path", "τ", "η", "p", "expected cost", "excluded"],
      d.candidates.map((c) => [agentsOf(c), num(c.tau), num(c.eta), num(c.probability), usd(c.expected_cost_usd), c.excluded || ""]),
      (i) => (d.chosen.includes(i) ? { class: "chosen" } : {})));
  page.replaceChildren(h("h2", {}, "Try a query"), query, h("div", {},
    h("button", { id: "route-button", onclick: async () => {
      try { out.replaceChildren(showRoute(await api("POST", "/v1/route", body()))); status(""); } catch (e) { status(e.message); }
    } }, "Show route (dry run)"), " ",
    h("button", { class: "primary", id: "ask-button", onclick: async () => {
      try {
        const r = await api("POST", "/v1/query", body());
        out.replaceChildren(h("h2", {}, "Answer"), h("div", { class: "answer", id: "answer" }, r.answer),
          h("p", {}, `by ${r.agents.join(", ") || "nobody"} · ${usd(r.cost_usd)} · ${ms(r.latency_ms)} · learning: ${r.learning || "–"}`),
          decisionDetail({ ...r, query: query.value, intent: null, key_id: null }));
        status("");
      } catch (e) { status(e.message); }
    } }, "Ask")), out);
}

// ----------------------------------------------------------------------------------------------- routing

const PAGES = { overview: [overview, 5000], decisions: [decisions, 5000], trails: [trails, 3000], agents: [agents, 5000], try: [tryPage, 0] };

function stop() { if (timer) clearInterval(timer); timer = null; }

async function route() {
  stop();
  const name = (location.hash.slice(1) || "overview").split("/")[0];
  const [render, every] = PAGES[name] || PAGES.overview;
  document.querySelectorAll("#tabs a").forEach((a) => a.classList.toggle("active", a.dataset.page === name));
  const page = document.getElementById("page");
  const draw = async () => { try { await render(page); status(""); } catch (e) { status(e.message); } };
  await draw();
  if (every) timer = setInterval(draw, every);
}

document.getElementById("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = document.getElementById("key");
  if (input.value) sessionStorage.setItem(KEY, input.value);
  input.value = "";
  route();
});
document.getElementById("forget").addEventListener("click", () => { sessionStorage.removeItem(KEY); route(); });
window.addEventListener("hashchange", route);
route();

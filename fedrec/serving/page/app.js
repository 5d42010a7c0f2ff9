// The page over `fedrec serve`: find products, build a basket, see its recommendations and
// the similar items of an item; a second view shows the model card. Talks to this server
// only. Every value from the server reaches the DOM through textContent (never innerHTML).
"use strict";

const KEY_STORAGE = "fedrec.apiKey";
const PICTURES = ["group_utility.png", "exposure_curve.png", "popularity.png"];
const PAGE_SIZE = 20;

const state = {
  basket: [], // catalog items, oldest first
  query: "",
  offset: 0,
  recsRequest: 0, // only the latest answer is drawn
  similarRequest: 0,
  cardLoaded: false,
  pictureUrls: [],
};

const $ = (id) => document.getElementById(id);

// --- DOM helpers: text only

function el(tag, { cls, text, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (attrs) for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  for (const child of children) if (child) node.append(child);
  return node;
}

function button(text, cls, onClick, label) {
  const b = el("button", { cls, text, attrs: { type: "button" } });
  if (label) b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

function setStatus(message, isError = false) {
  const status = $("status");
  status.textContent = message || "";
  status.classList.toggle("error", Boolean(isError));
}

function fmt(value, digits = 4) {
  if (value === null || value === undefined || value === "") return "—";
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  if (Number.isInteger(n)) return String(n);
  return n.toFixed(digits);
}

// --- the API

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function request(path, options = {}) {
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  const key = apiKey();
  if (key) headers["X-API-Key"] = key;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && typeof body.detail === "string") detail = body.detail;
    } catch (_) {
      // not JSON: keep the status line
    }
    if (response.status === 401) {
      $("api-key").focus();
      detail = `${detail} Enter the API key at the top of the page.`;
    }
    throw new ApiError(response.status, detail);
  }
  return response;
}

async function getJson(path) {
  return (await request(path)).json();
}

async function postJson(path, body) {
  const response = await request(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return response.json();
}

// --- items as list entries

function label(item) {
  return item.name ? item.name : `item ${item.item_id}`;
}

function describe(item) {
  const parts = [];
  if (item.name) parts.push(`id ${item.item_id}`);
  if (item.brand) parts.push(item.brand);
  if (item.category) parts.push(item.category);
  return parts.join(" · ");
}

function inBasket(itemId) {
  return state.basket.some((b) => b.item_id === itemId);
}

function itemEntry(item, { tag = "li", reason = false, add = true, similar = true, remove = false } = {}) {
  const entry = el(tag, { cls: "item", attrs: { "data-item-id": item.item_id } });
  const text = el("div", { cls: "item-text" }, [
    el("span", { cls: "item-name", text: label(item) }),
    el("span", { cls: "item-meta muted", text: describe(item) }),
  ]);
  if (reason && item.reason) {
    text.append(el("span", { cls: "reason", text: item.reason }));
    if (item.score !== undefined) text.append(el("span", { cls: "score muted", text: `score ${fmt(item.score)}` }));
  }
  entry.append(text);
  const actions = el("div", { cls: "actions" });
  if (add) {
    const b = button(inBasket(item.item_id) ? "In basket" : "Add", "add", () => addToBasket(item), `add ${label(item)} to the basket`);
    b.disabled = inBasket(item.item_id);
    actions.append(b);
  }
  if (similar) actions.append(button("Similar", "similar", () => showSimilar(item), `items similar to ${label(item)}`));
  if (remove) actions.append(button("Remove", "remove", () => removeFromBasket(item.item_id), `remove ${label(item)}`));
  entry.append(actions);
  return entry;
}

function catalogFields(item) {
  return { item_id: String(item.item_id), name: item.name || null, brand: item.brand || null, category: item.category || null };
}

function refreshAddButtons() {
  for (const b of document.querySelectorAll("button.add")) {
    const entry = b.closest("[data-item-id]");
    const taken = entry && inBasket(entry.getAttribute("data-item-id"));
    b.disabled = Boolean(taken);
    b.textContent = taken ? "In basket" : "Add";
  }
}

// --- search

async function search(more = false) {
  if (!more) {
    state.query = $("search-input").value.trim();
    state.offset = 0;
  }
  const params = new URLSearchParams({ query: state.query, limit: String(PAGE_SIZE), offset: String(state.offset) });
  try {
    const answer = await getJson(`/items?${params}`);
    const list = $("results");
    if (!more) list.replaceChildren();
    for (const item of answer.items) list.append(itemEntry(catalogFields(item)));
    state.offset = answer.offset + answer.items.length;
    const what = state.query ? `matching “${state.query}”` : "in the catalog";
    $("search-summary").textContent = `${answer.total} item(s) ${what}; showing ${Math.min(state.offset, answer.total)}.`;
    $("search-more").hidden = state.offset >= answer.total;
    setStatus("");
  } catch (err) {
    setStatus(`Search failed: ${err.message}`, true);
  }
}

// --- basket

function addToBasket(item) {
  const fields = catalogFields(item);
  if (inBasket(fields.item_id)) return;
  state.basket.push(fields);
  basketChanged();
}

function removeFromBasket(itemId) {
  state.basket = state.basket.filter((b) => b.item_id !== itemId);
  basketChanged();
}

function basketChanged() {
  const list = $("basket");
  list.replaceChildren(...state.basket.map((item) => itemEntry(item, { add: false, remove: true })));
  $("basket-empty").hidden = state.basket.length > 0;
  $("basket-clear").hidden = state.basket.length === 0;
  refreshAddButtons();
  recommend();
}

// --- recommendations

function options() {
  const k = Math.max(1, Math.min(100, parseInt($("opt-k").value, 10) || 10));
  const body = { items: state.basket.map((b) => b.item_id), k, exclude_seen: $("opt-exclude").checked };
  const brand = $("opt-brand").value.trim();
  const category = $("opt-category").value.trim();
  if (brand) body.brand = brand;
  if (category) body.category = category;
  return body;
}

function drawNotes(listId, answer) {
  const notes = $(listId);
  notes.replaceChildren(...(answer.notes || []).map((note) => el("li", { text: note })));
}

async function recommend() {
  const ticket = ++state.recsRequest;
  const box = $("recs-box");
  box.setAttribute("aria-busy", "true");
  try {
    const answer = await postJson("/recommend", options());
    if (ticket !== state.recsRequest) return;
    const list = $("recommendations");
    list.replaceChildren(...answer.items.map((item) => itemEntry(item, { reason: true })));
    const how = answer.fallback ? "popular items (fallback: the model has nothing to go on)" : `the ${answer.model} model's top items`;
    $("recs-summary").textContent = `${answer.items.length} item(s): ${how}; ${answer.history_used} basket item(s) used.`;
    drawNotes("recs-notes", answer);
    list.setAttribute("data-state", answer.fallback ? "fallback" : "model");
    setStatus("");
  } catch (err) {
    if (ticket !== state.recsRequest) return;
    $("recommendations").replaceChildren();
    $("recs-summary").textContent = "";
    setStatus(`Recommendations failed: ${err.message}`, true);
  } finally {
    if (ticket === state.recsRequest) box.removeAttribute("aria-busy");
  }
}

// --- similar items

async function showSimilar(item) {
  const ticket = ++state.similarRequest;
  const box = $("similar-box");
  box.hidden = false;
  $("similar-title").textContent = `Similar to ${label(item)}`;
  try {
    const answer = await getJson(`/items/${encodeURIComponent(item.item_id)}/similar?k=10`);
    if (ticket !== state.similarRequest) return;
    $("similar").replaceChildren(...answer.items.map((other) => itemEntry(other, { reason: true })));
    const how = answer.fallback ? "catalog neighbours (the model has none of its own for this item)" : `nearest in the ${answer.model} model`;
    $("similar-summary").textContent = `${answer.items.length} item(s): ${how}.`;
    drawNotes("similar-notes", answer);
    box.scrollIntoView({ block: "nearest" });
    setStatus("");
  } catch (err) {
    if (ticket !== state.similarRequest) return;
    $("similar").replaceChildren();
    $("similar-summary").textContent = "";
    setStatus(`Similar items failed: ${err.message}`, true);
  }
}

// --- the model card

function rows(tbodySelector, records) {
  const body = document.querySelector(tbodySelector);
  body.replaceChildren(...records.map((cells) => el("tr", {}, cells.map((c) => (c instanceof Node ? el("td", {}, [c]) : el("td", { text: c }))))));
}

function threshold(t) {
  if (!t) return "—";
  const lower = t.lower ?? null;
  const upper = t.upper ?? null;
  if (lower !== null && upper !== null) return `${fmt(lower)} to ${fmt(upper)}`;
  if (lower !== null) return `≥ ${fmt(lower)}`;
  if (upper !== null) return `≤ ${fmt(upper)}`;
  return "—";
}

function descriptions(listId, entries) {
  $(listId).replaceChildren(...(entries || []).map((e) => el("li", { text: e.description || e.mitigation_strategy || "" })));
}

function drawCard(card, verdict) {
  const details = card.model_details || {};
  const release = card.release || {};
  const considerations = card.considerations || {};
  $("card-name").textContent = details.name || "Model card";
  const decided = verdict.verdict || release.verdict || "unknown";
  const verdictNode = $("verdict");
  verdictNode.textContent = `Release verdict: ${decided}`;
  verdictNode.setAttribute("data-verdict", decided);
  $("card-overview").textContent = details.overview || "";
  const override = verdict.override || release.override;
  const overrideNode = $("card-override");
  overrideNode.hidden = !override;
  overrideNode.textContent = override ? `Released despite failed checks: ${override.reason || JSON.stringify(override)}` : "";

  const facts = [
    ["model", (card.model_parameters || {}).model_architecture],
    ["released", (details.version || {}).date],
    ["fedrec", (release.code_version || {}).fedrec],
    ["commit", (release.code_version || {}).commit],
    ["model sha256", verdict.model_sha256],
    ["input", (card.model_parameters || {}).input_format],
    ["output", (card.model_parameters || {}).output_format],
  ];
  for (const data of (card.model_parameters || {}).data || []) facts.push(["data", `${data.name}: ${data.description || ""}`]);
  $("card-details").replaceChildren(...facts.filter(([, v]) => v).flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));

  rows("#checks tbody", (verdict.checks || []).map((c) => [
    c.check, c.slice || "", fmt(c.value), threshold(c.threshold),
    el("span", { cls: c.passed ? "pass" : "fail", text: c.passed ? "yes" : "no", attrs: { title: c.message || "" } }),
  ]).concat((verdict.skipped || []).map((s) => [s.check || "", s.slice || "", "—", "—",
    el("span", { cls: "skipped", text: "skipped", attrs: { title: s.reason || "" } })])));

  const privacy = (considerations.ethical_considerations || []).find((e) => e.name === "Privacy");
  $("privacy").textContent = privacy ? privacy.mitigation_strategy : ((considerations.tradeoffs || [])[0] || {}).description || "—";
  $("considerations").replaceChildren(...(considerations.ethical_considerations || [])
    .filter((e) => e.name !== "Privacy")
    .map((e) => el("li", {}, [el("strong", { text: `${e.name}: ` }), document.createTextNode(e.mitigation_strategy || "")])));
  descriptions("intended-use", [...(considerations.use_cases || []), ...(considerations.users || []).map((u) => ({ description: `Users: ${u.description}` }))]);
  descriptions("limitations", considerations.limitations);

  const metrics = (card.quantitative_analysis || {}).performance_metrics || [];
  rows("#metrics tbody", metrics.map((m) => {
    const ci = m.confidence_interval;
    return [m.type, m.slice || "", fmt(m.value), ci ? `[${fmt(ci.lower_bound)}, ${fmt(ci.upper_bound)}]` : "—"];
  }));
}

async function drawPictures(card) {
  const listed = (((card.quantitative_analysis || {}).graphics || {}).collection || []).map((g) => g.image || g.name);
  const names = PICTURES.filter((name) => listed.includes(name));
  for (const url of state.pictureUrls) URL.revokeObjectURL(url);
  state.pictureUrls = [];
  const box = $("pictures");
  box.replaceChildren();
  $("pictures-summary").textContent = names.length ? "" : "This release has no audit pictures.";
  for (const name of names) {
    try {
      const blob = await (await request(`/release/pictures/${encodeURIComponent(name)}`, { headers: { Accept: "image/png" } })).blob();
      const url = URL.createObjectURL(blob);
      state.pictureUrls.push(url);
      const caption = name.replace(/\.png$/, "").replace(/_/g, " ");
      box.append(el("figure", {}, [el("img", { attrs: { src: url, alt: caption, "data-picture": name } }), el("figcaption", { text: caption })]));
    } catch (err) {
      box.append(el("p", { cls: "error", text: `${name}: ${err.message}` }));
    }
  }
}

async function loadCard() {
  try {
    const [card, verdict] = await Promise.all([getJson("/model"), getJson("/model/verdict")]);
    drawCard(card, verdict);
    state.cardLoaded = true;
    setStatus("");
    await drawPictures(card);
  } catch (err) {
    setStatus(`The model card could not be loaded: ${err.message}`, true);
  }
}

// --- views, key, start

function showView(name) {
  const card = name === "card";
  $("view-shop").hidden = card;
  $("view-card").hidden = !card;
  $("tab-shop").setAttribute("aria-selected", String(!card));
  $("tab-card").setAttribute("aria-selected", String(card));
  if (card && !state.cardLoaded) loadCard();
}

async function releaseInfo() {
  try {
    const response = await fetch("/readyz", { headers: { Accept: "application/json" } });
    const info = await response.json();
    $("release-info").textContent = info.ready
      ? `serving the ${info.model} release (verdict ${info.verdict}, ${info.released || "undated"})`
      : "no release is loaded yet";
  } catch (err) {
    $("release-info").textContent = `the server does not answer: ${err.message}`;
  }
}

function start() {
  $("api-key").value = apiKey();
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
    setStatus(key ? "API key set for this tab." : "API key cleared.");
    state.cardLoaded = false;
    search();
    recommend();
    if (!$("view-card").hidden) loadCard();
  });
  $("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    $("api-key").value = "";
    setStatus("API key forgotten.");
  });
  $("tab-shop").addEventListener("click", () => showView("shop"));
  $("tab-card").addEventListener("click", () => showView("card"));
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  $("search-more").addEventListener("click", () => search(true));
  $("basket-clear").addEventListener("click", () => {
    state.basket = [];
    basketChanged();
  });
  for (const id of ["opt-k", "opt-exclude", "opt-brand", "opt-category"]) $(id).addEventListener("change", () => recommend());
  releaseInfo();
  search();
  recommend();
}

document.addEventListener("DOMContentLoaded", start);

// The agent console: a small page over the public admin API. Every piece of text that comes
// from the API is set with textContent, never parsed as HTML; the key lives in sessionStorage
// and travels only in the Authorization header.
"use strict";

const STATES = ["requested", "pending_review", "info_requested", "approved", "rejected", "in_transit", "received",
  "refund_pending", "refunded", "replacement_shipped", "diagnosing", "quote_pending", "repairing", "shipped_back",
  "closed", "cancelled"];
const REASONS = ["changed_mind", "wrong_size", "ordered_by_mistake", "better_price_elsewhere", "defective",
  "damaged_in_transit", "wrong_item", "not_as_described", "arrived_late", "missing_parts", "other"];
const CONDITIONS = ["as_new", "opened", "used", "damaged", "defective", "wrong_item", "missing"];

let messages = {};
let current = null; // the case on screen
let nextCursor = null;
const blobUrls = [];

const $ = (selector) => document.querySelector(selector);
const t = (key) => messages[key] || key;

function el(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function money(amount, currency) {
  if (amount === null || amount === undefined) return "";
  const digits = { JPY: 0, KRW: 0, KWD: 3, BHD: 3, JOD: 3, OMR: 3, TND: 3 }[currency] ?? 2;
  return `${(amount / 10 ** digits).toFixed(digits)} ${currency}`;
}

async function loadLanguage(language) {
  const response = await fetch(`/console/i18n/${language}.json`);
  messages = await response.json();
  document.documentElement.lang = language === "zh" ? "zh-CN" : "en";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
  sessionStorage.setItem("language", language);
}

function notice(text, isError = false) {
  const box = $("#notice");
  box.textContent = text;
  box.className = isError ? "error" : "";
  box.hidden = !text;
}

class Stale extends Error {}

async function api(method, path, body, headers = {}) {
  const key = sessionStorage.getItem("key");
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${key}`, ...(body ? { "Content-Type": "application/json" } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (response.status === 401) {
    signOut(t("bad_key"));
    throw new Error("unauthorized");
  }
  if (response.status === 412) throw new Stale();
  const payload = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) throw new Error(payload?.detail || `${response.status}`);
  return payload;
}

function show(section) {
  for (const id of ["sign-in", "queue", "case"]) $(`#${id}`).hidden = id !== section;
  $("#sign-out").hidden = section === "sign-in";
}

function signOut(message) {
  sessionStorage.removeItem("key");
  for (const url of blobUrls.splice(0)) URL.revokeObjectURL(url);
  show("sign-in");
  notice(message || t("signed_out"));
}

// ------------------------------------------------------------------ queue

function filters() {
  const form = new FormData($("#filters"));
  const query = new URLSearchParams({ sort: "sla_due_at", limit: "25" });
  for (const [name, value] of form) if (value) query.set(name, value);
  return query;
}

async function showQueue(append = false) {
  show("queue");
  const query = filters();
  if (append && nextCursor) query.set("cursor", nextCursor);
  const [page, counts] = await Promise.all([api("GET", `/admin/v1/cases?${query}`), append ? null : api("GET", "/admin/v1/case-counts")]);
  if (counts) {
    const list = $("#counts");
    list.replaceChildren(...Object.entries(counts.counts).map(([state, n]) => el("li", `${state}: ${n}`, { "data-state": state })));
  }
  const body = $("#queue-table tbody");
  if (!append) body.replaceChildren();
  const now = Date.now();
  for (const item of page.items) {
    const row = el("tr", null, { "data-case": item.id });
    if (item.sla_due_at && Date.parse(item.sla_due_at) < now) row.classList.add("overdue");
    row.append(
      el("td", item.id), el("td", item.type), el("td", item.state),
      el("td", [...new Set(item.items.map((i) => i.reason))].join(", ")),
      el("td", money(item.money.refund_total, item.money.currency)),
      el("td", item.sla_due_at ? new Date(item.sla_due_at).toLocaleString() : ""),
    );
    row.addEventListener("click", () => openCase(item.id));
    body.append(row);
  }
  nextCursor = page.next_cursor;
  $("#more").hidden = !nextCursor;
}

// ------------------------------------------------------------------ one case

async function openCase(caseId) {
  const [item, events] = await Promise.all([api("GET", `/admin/v1/cases/${encodeURIComponent(caseId)}`), api("GET", `/admin/v1/cases/${encodeURIComponent(caseId)}/events`)]);
  const order = await api("GET", `/admin/v1/orders/${encodeURIComponent(item.order_id)}`);
  current = item;
  $("#order-summary").textContent = `${order.order_id} · ${t("captured")} ${money(order.payment.captured_amount, order.currency)}` +
    ` · ${t("refundable")} ${money(order.refundable_amount, order.currency)}`;
  $("#order-lines tbody").replaceChildren(...order.lines.map((l) => {
    const row = el("tr");
    row.append(el("td", l.line_id), el("td", l.sku), el("td", l.title), el("td", l.quantity),
      el("td", money(l.unit_price, order.currency)), el("td", l.returnable_quantity));
    return row;
  }));
  show("case");
  notice("");
  $("#case-id").textContent = item.id;
  $("#case-state").textContent = item.state;
  $("#case-flags").textContent = item.flags.join(", ");
  $("#items tbody").replaceChildren(...item.items.map((i) => {
    const row = el("tr");
    row.append(el("td", i.line_id), el("td", i.sku), el("td", i.quantity), el("td", money(i.unit_price, item.money.currency)),
      el("td", i.reason), el("td", i.note), el("td", i.received_quantity === null ? "" : `${i.received_quantity} (${i.condition})`));
    return row;
  }));
  $("#customer-note").textContent = item.customer_note || t("none");
  $("#notes").replaceChildren(...item.notes.map((n) => el("li", `${new Date(n.at).toLocaleString()} ${n.author}: ${n.text}`)));
  const d = item.decision;
  $("#decision-summary").textContent = [
    d.eligible ? t("eligible") : t("not_eligible"), d.requires_review ? t("needs_review") : "",
    d.requires_photos ? t("needs_photos") : "", d.keep_item ? t("keep_item") : "", `${t("policy_version")} ${d.policy_version}`,
  ].filter(Boolean).join(" · ");
  $("#outcomes tbody").replaceChildren(...d.outcomes.map((o) => {
    const row = el("tr", null, { "data-rule": o.rule });
    const result = el("td", o.result + (o.overridden_by ? ` → ${o.override_reason}` : ""));
    result.className = `result-${o.result}`;
    row.append(el("td", o.rule), result, el("td", o.detail));
    return row;
  }));
  const m = item.money;
  const money_rows = [["items_total", m.items_total], ["restocking_fee", m.restocking_fee],
    ["return_shipping", m.return_shipping.customer_share], ["original_shipping_refund", m.original_shipping_refund],
    ["refund_total", m.refund_total], ["store_credit_total", m.store_credit_total], ["difference_due", m.difference_due]];
  $("#money").replaceChildren(...money_rows.flatMap(([key, amount]) => [el("dt", t(key)), el("dd", money(amount, m.currency))]));
  await showPhotos(item);
  $("#refunds tbody").replaceChildren(...item.refunds.map((r) => {
    const row = el("tr", null, { "data-refund": r.id });
    const cell = el("td");
    if (r.status === "failed" || r.status === "canceled") {
      const retry = el("button", t("retry"));
      retry.addEventListener("click", () => act(() => api("POST", `/admin/v1/refunds/${encodeURIComponent(r.id)}/retry`)));
      cell.append(retry);
    }
    row.append(el("td", r.id), el("td", money(r.amount, r.currency)), el("td", r.status + (r.failure_reason ? ` (${r.failure_reason})` : "")), cell);
    return row;
  }));
  prepareActions(item);
  $("#timeline").replaceChildren(...events.items.map((e) =>
    el("li", `${new Date(e.at).toLocaleString()} · ${e.actor_role} ${e.actor_id} · ${e.type}` +
      (e.from_state !== e.to_state ? ` · ${e.from_state ?? ""} → ${e.to_state}` : "") +
      (Object.keys(e.data).length ? ` · ${JSON.stringify(e.data)}` : ""))));
}

async function showPhotos(item) {
  for (const url of blobUrls.splice(0)) URL.revokeObjectURL(url);
  const holder = $("#photos");
  holder.replaceChildren();
  for (const photo of item.photos) {
    const thumb = await fetchImage(photo.thumbnail_url);
    const image = el("img", null, { src: thumb, alt: photo.id, "data-photo": photo.id });
    image.addEventListener("click", async () => {
      $("#viewer-image").src = await fetchImage(photo.url);
      $("#viewer").showModal();
    });
    holder.append(image);
    if (photo.matches_case_id) holder.append(el("span", `≈ ${photo.matches_case_id}`, { class: "flags" }));
  }
}

async function fetchImage(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${sessionStorage.getItem("key")}` } });
  const url = URL.createObjectURL(await response.blob());
  blobUrls.push(url);
  return url;
}

function prepareActions(item) {
  const allowed = new Set(item.allowed_actions);
  // allowed_actions names the endpoints themselves, as each form's data-action does
  for (const form of document.querySelectorAll("#actions form")) form.hidden = !allowed.has(form.dataset.action);
  const rules = document.querySelector('#actions form[data-action="approve"] select');
  rules.replaceChildren(el("option", "", { value: "" }), ...item.decision.outcomes.map((o) => el("option", o.rule, { value: o.rule })));
  $("#receive-items").replaceChildren(...item.items.map((i) => {
    const row = el("div", null, { "data-line": i.line_id });
    const quantity = el("input", null, { type: "number", min: "0", max: String(i.quantity), value: String(i.quantity), name: `quantity:${i.line_id}` });
    const condition = el("select", null, { name: `condition:${i.line_id}` });
    condition.append(...CONDITIONS.map((c) => el("option", c, { value: c })));
    row.append(el("span", `${i.line_id} ${i.sku} `), quantity, el("span", ` ${t("condition")} `), condition);
    return row;
  }));
}

function bodyFor(action, form) {
  const data = new FormData(form);
  if (action === "approve") {
    const body = { note: data.get("note") || null, overrides: [] };
    if (data.get("override_rule")) {
      if (!data.get("override_reason")) throw new Error(t("override_needs_reason"));
      body.overrides.push({ rule: data.get("override_rule"), reason: data.get("override_reason") });
    }
    return body;
  }
  if (action === "receive") {
    return { items: current.items.map((i) => ({
      line_id: i.line_id, quantity: Number(data.get(`quantity:${i.line_id}`)), condition: data.get(`condition:${i.line_id}`),
    })) };
  }
  if (action === "repair/diagnose") {
    const quote = data.get("quote_amount");
    return { finding: data.get("finding"), in_warranty: data.get("in_warranty") === "on", quote_amount: quote ? Number(quote) : null };
  }
  return Object.fromEntries(data);
}

async function act(call) {
  try {
    await call();
    notice(t("done"));
    await openCase(current.id);
  } catch (error) {
    if (error instanceof Stale) {
      const box = $("#notice");
      notice(t("stale"), true);
      const reload = el("button", t("reload"));
      reload.addEventListener("click", () => openCase(current.id));
      box.append(" ", reload);
    } else if (error.message !== "unauthorized") {
      notice(error.message, true);
    }
  }
}

// ------------------------------------------------------------------ wiring

document.addEventListener("DOMContentLoaded", async () => {
  await loadLanguage(sessionStorage.getItem("language") || "en");
  $("#language").value = sessionStorage.getItem("language") || "en";
  $("#language").addEventListener("change", async (e) => {
    await loadLanguage(e.target.value);
    if (current && !$("#case").hidden) await openCase(current.id);
  });
  $("#filter-state").append(el("option", "", { value: "" }), ...STATES.map((s) => el("option", s, { value: s })));
  $("#filter-reason").append(el("option", "", { value: "" }), ...REASONS.map((r) => el("option", r, { value: r })));
  $("#sign-in-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    sessionStorage.setItem("key", $("#api-key").value.trim());
    $("#api-key").value = "";
    try {
      await showQueue();
      notice("");
    } catch (error) {
      if (error.message !== "unauthorized") notice(error.message, true);
    }
  });
  $("#sign-out").addEventListener("click", () => signOut());
  $("#filters").addEventListener("submit", (e) => { e.preventDefault(); showQueue(); });
  $("#more").addEventListener("click", () => showQueue(true));
  $("#back").addEventListener("click", () => showQueue());
  for (const form of document.querySelectorAll("#actions form")) {
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const action = form.dataset.action;
      act(async () => {
        const body = bodyFor(action, form);
        const path = action === "notes" ? "notes" : action;
        await api("POST", `/admin/v1/cases/${encodeURIComponent(current.id)}/${path}`, body, { "If-Match": `"${current.version}"` });
        form.reset();
      });
    });
  }
  if (sessionStorage.getItem("key")) {
    try { await showQueue(); } catch { /* signOut already showed why */ }
  } else {
    show("sign-in");
  }
});

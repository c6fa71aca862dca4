// The agent console: a small page over the public admin API. Every piece of text that comes
// from the API is set with textContent, never parsed as HTML; the key lives in sessionStorage
// and travels only in the Authorization header. Pages are hash routes (#/ and #/cases/<id>),
// so links, Back, reload and deep links work without a server-side router.
"use strict";

const STATES = ["requested", "pending_review", "info_requested", "approved", "rejected", "in_transit", "received",
  "refund_pending", "refunded", "replacement_shipped", "diagnosing", "quote_pending", "repairing", "shipped_back",
  "closed", "cancelled"];
const TYPES = ["return", "exchange", "repair"];
const REASONS = ["changed_mind", "wrong_size", "ordered_by_mistake", "better_price_elsewhere", "defective",
  "damaged_in_transit", "wrong_item", "not_as_described", "arrived_late", "missing_parts", "other"];
const CONDITIONS = ["as_new", "opened", "used", "damaged", "defective", "wrong_item", "missing"];
const OPEN_STATES = new Set(["requested", "pending_review", "info_requested"]);
const ATTENTION = new Set(["failed", "canceled", "requires_action"]);
// The one thing to do next, in the order an agent would pick it (a label held over its ceiling first:
// the customer waits for it).
const NEXT = ["label/buy", "approve", "receive", "ship-replacement", "repair/diagnose", "repair/complete", "ship-back", "close"];
const LABELS = { "label/buy": "label_buy", approve: "approve", receive: "receive", "ship-replacement": "ship_replacement",
  "repair/diagnose": "diagnose", "repair/complete": "complete_repair", "ship-back": "ship_back", close: "close_case" };
const TEXT_KEYS = ["note", "reason", "message", "why", "text", "finding"]; // event data shown as the words typed

let messages = {};
let me = null; // {key_id, role} of the signed-in key
let current = null; // the case on screen
let nextCursor = null;
const blobUrls = [];

const t = (key, vars) => translate(messages, key, vars); // $, el, money…: ui.js

/** A typed amount in major units ("12.50") as minor units, with the currency's digits; null if empty. */
function toMinor(text, currency) {
  const typed = String(text || "").trim().replace(",", ".");
  if (!typed) return null;
  const digits = digitsOf(currency);
  if (!new RegExp(`^\\d+(\\.\\d{0,${digits}})?$`).test(typed)) throw new Error(t("quote_invalid"));
  const [whole, fraction = ""] = typed.split(".");
  return Number(whole) * 10 ** digits + Number(fraction.padEnd(digits, "0") || 0);
}

const date = (iso) => (iso ? new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso)) : "");

/** "overdue 3 h" / "due in 5 hours": words, not only a colour. */
function due(iso) {
  if (!iso) return "";
  const minutes = Math.round((Date.parse(iso) - Date.now()) / 60000);
  const [value, unit] = Math.abs(minutes) >= 2880 ? [minutes / 1440, "day"] : Math.abs(minutes) >= 60 ? [minutes / 60, "hour"] : [minutes, "minute"];
  const rounded = Math.round(value);
  if (minutes < 0) {
    const span = new Intl.NumberFormat(locale(), { style: "unit", unit, unitDisplay: "short" }).format(Math.abs(rounded));
    return t("overdue_by", { time: span });
  }
  return t("due_in", { time: new Intl.RelativeTimeFormat(locale(), { numeric: "auto" }).format(rounded, unit) });
}

// People by role, and agents by their key id (the name assign uses); the storefront and the system by role alone.
const who = (id, role) => (me && id === me.key_id ? t("me") : `${t(`roles.${role}`)}${role === "agent" || role === "admin" ? ` ${id}` : ""}`);
const attentionRefund = (item) => item.refunds.find((r) => ATTENTION.has(r.status) && !r.retried_by);

async function loadLanguage(language) {
  const response = await fetch(`/console/i18n/${language}.json`);
  messages = await response.json();
  document.documentElement.lang = language === "zh" ? "zh-CN" : "en";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
  $("#language").setAttribute("aria-label", t("language"));
  $("#whoami").textContent = me ? t("signed_in_as", { id: me.key_id }) : "";
  fillChoices();
  sessionStorage.setItem("language", language);
}

function fillChoices() {
  for (const [id, values, group] of [["#filter-state", STATES, "states"], ["#filter-type", TYPES, "types"], ["#filter-reason", REASONS, "reasons"]]) {
    const select = $(id);
    const chosen = select.value;
    select.replaceChildren(el("option", t("all"), { value: "" }), ...values.map((v) => el("option", t(`${group}.${v}`), { value: v })));
    select.value = chosen;
  }
}

function notice(text) {
  $("#notice").textContent = text || "";
  $("#notice").hidden = !text;
}

class Stale extends Error {}
class SignedOut extends Error {}

async function api(method, path, body, headers = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${sessionStorage.getItem("key")}`, ...(body ? { "Content-Type": "application/json" } : {}), ...headers },
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch {
    throw new Error(t("network"));
  }
  if (response.status === 401 || response.status === 403) {
    signOut(t(response.status === 401 ? "bad_key" : "wrong_role"));
    throw new SignedOut();
  }
  if (response.status === 412) throw new Stale();
  const payload = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) throw new Error(payload?.detail || payload?.title || `HTTP ${response.status}`);
  return payload;
}

function show(section) {
  for (const id of ["sign-in", "queue", "case"]) $(`#${id}`).hidden = id !== section;
  $("#sign-out").hidden = section === "sign-in";
}

function signOut(message) {
  sessionStorage.removeItem("key");
  me = null;
  $("#whoami").textContent = "";
  for (const url of blobUrls.splice(0)) URL.revokeObjectURL(url);
  show("sign-in");
  notice(message || t("signed_out"));
}

/** Rows whose cells carry their column's name, for the phone layout's cards. */
function fillTable(table, rows) {
  const names = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
  for (const row of rows) [...row.cells].forEach((cell, i) => cell.setAttribute("data-label", names[i] || ""));
  table.tBodies[0].replaceChildren(...rows);
}

function row(...cells) {
  const tr = el("tr");
  for (const cell of cells) tr.append(cell instanceof Node ? wrap(cell) : el("td", cell));
  return tr;
}

function wrap(node) {
  const td = el("td");
  td.append(node);
  return td;
}

// ------------------------------------------------------------------ queue

function filters() {
  const query = new URLSearchParams({ sort: "sla_due_at", limit: "25" });
  for (const [name, value] of new FormData($("#filters"))) if (value) query.set(name, String(value).trim());
  return query;
}

/** The queue: cases whose refund failed (or waits for the customer) first, then by due time. */
async function showQueue(append = false) {
  show("queue");
  current = null;
  const status = $("#queue-status");
  status.textContent = t("loading");
  status.className = "status";
  try {
    const query = filters();
    const pages = [];
    if (append && nextCursor) {
      query.set("cursor", nextCursor);
      if (!query.has("attention")) query.set("attention", "false");
      pages.push(await api("GET", `/admin/v1/cases?${query}`));
    } else if (query.has("attention")) {
      pages.push(await api("GET", `/admin/v1/cases?${query}`));
    } else {
      const first = new URLSearchParams(query);
      first.set("attention", "true");
      const rest = new URLSearchParams(query);
      rest.set("attention", "false");
      pages.push(...await Promise.all([api("GET", `/admin/v1/cases?${first}`), api("GET", `/admin/v1/cases?${rest}`)]));
    }
    const counts = append ? null : await api("GET", "/admin/v1/case-counts");
    if (counts) showCounts(counts.counts);
    const body = $("#queue-table tbody");
    const rows = pages.flatMap((page) => page.items.map(queueRow));
    if (append) {
      fillTable($("#queue-table"), [...body.rows, ...rows]);
    } else {
      fillTable($("#queue-table"), rows);
    }
    nextCursor = pages[pages.length - 1].next_cursor;
    $("#more").hidden = !nextCursor;
    status.textContent = body.rows.length ? "" : t("empty");
  } catch (error) {
    if (error instanceof SignedOut) return;
    status.textContent = t("load_failed", { error: error.message });
    status.className = "status error";
  }
}

function showCounts(counts) {
  const list = $("#counts");
  list.replaceChildren(...Object.entries(counts).map(([state, n]) => {
    const item = el("li");
    const button = el("button", `${t(`states.${state}`)}: ${n}`, { type: "button", "data-state": state });
    button.addEventListener("click", () => {
      $("#filter-state").value = state;
      showQueue();
    });
    item.append(button);
    return item;
  }));
}

function queueRow(item) {
  const link = el("a", item.id, { href: `#/cases/${encodeURIComponent(item.id)}` });
  const first = el("span");
  first.append(link);
  const failing = attentionRefund(item);
  if (failing) first.append(" ", el("span", t(failing.status === "requires_action" ? "refund_action_badge" : "refund_failed_badge"), { class: "badge" }));
  const m = item.money;
  const amount = m.refund_total ? money(m.refund_total, m.currency) : m.store_credit_total ? money(m.store_credit_total, m.currency) : "";
  const tr = row(first, item.order_id, item.customer_id,
    item.items.map((i) => `${i.quantity}× ${i.sku} (${t(`reasons.${i.reason}`)})`).join(", "),
    t(`states.${item.state}`), due(item.sla_due_at),
    item.assignee ? (me && item.assignee === me.key_id ? t("me") : item.assignee) : t("unassigned"), amount);
  tr.dataset.case = item.id;
  if (failing) tr.classList.add("attention");
  if (item.sla_due_at && Date.parse(item.sla_due_at) < Date.now()) tr.classList.add("overdue");
  return tr;
}

// ------------------------------------------------------------------ one case

async function openCase(caseId, { focus = true } = {}) {
  show("case");
  const status = $("#case-status");
  if (!current || current.id !== caseId) {
    $("#case-body").hidden = true;
    status.textContent = t("loading");
    status.className = "status";
  }
  try {
    const path = `/admin/v1/cases/${encodeURIComponent(caseId)}`;
    const [item, events] = await Promise.all([api("GET", path), api("GET", `${path}/events`)]);
    const order = await api("GET", `/admin/v1/orders/${encodeURIComponent(item.order_id)}`);
    const fresh = !current || current.id !== item.id;
    current = item;
    renderCase(item, events.items, order, fresh);
    status.textContent = "";
    $("#case-body").hidden = false;
    if (focus && fresh) $("#case h2").focus();
    await showPhotos(item);
  } catch (error) {
    if (error instanceof SignedOut) return;
    status.textContent = t("load_failed", { error: error.message });
    status.className = "status error";
  }
}

function renderCase(item, events, order, fresh) {
  const currency = item.money.currency;
  $("#case-id").textContent = item.id;
  $("#case-state").textContent = t(`states.${item.state}`);
  const failing = attentionRefund(item);
  $("#case-flags").textContent = [failing ? t("needs_attention") : "", ...item.flags.map((f) => t(`flag_${f}`))].filter(Boolean).join(" · ");
  $("#case-gets").textContent = gets(item);
  const d = item.decision;
  $("#decision-summary").textContent = [
    d.eligible ? t("eligible") : t("not_eligible"),
    d.requires_review ? (OPEN_STATES.has(item.state) ? t("needs_review") : t("reviewed")) : "",
    d.requires_photos && OPEN_STATES.has(item.state) ? t("needs_photos") : "",
    d.keep_item ? t("keep_item") : "", t("policy_version", { v: d.policy_version }),
  ].filter(Boolean).join(" · ");

  showDetails(item, events, order);
  fillTable($("#items"), item.items.map((i) => row(`${i.line_id} · ${i.sku}`, i.quantity, money(i.unit_price, currency),
    t(`reasons.${i.reason}`), i.note || "", i.received_quantity === null ? "" : `${i.received_quantity} (${t(`conditions.${i.condition}`)})`)));
  $("#customer-note").textContent = item.customer_note || t("none");
  $("#notes").replaceChildren(...item.notes.map((n) => el("li", `${date(n.at)} · ${who(n.author, "agent")}: ${n.text}`)));

  const m = item.money;
  const rows = [["items_total", m.items_total], ["restocking_fee", -m.restocking_fee], ["return_shipping", -m.return_shipping.customer_share],
    ["original_shipping_refund", m.original_shipping_refund], ["store_credit_bonus", m.store_credit_bonus],
    ["store_credit_total", m.store_credit_total], ["difference_due", m.difference_due]].filter(([, amount]) => amount);
  rows.push(["refund_total", m.refund_total]);
  $("#money").replaceChildren(...rows.flatMap(([key, amount]) => [el("dt", t(key)), el("dd", money(amount, currency), { "data-money": key })]));

  $("#refunds").replaceChildren(...item.refunds.map(refundItem));
  if (!item.refunds.length) $("#refunds").append(el("li", t("none"), { class: "muted" }));
  // what decided the route: failures, reviews and overrides, and the rules that choose review or approval
  const deciding = d.outcomes.filter((o) => o.result === "fail" || o.result === "review" || o.overridden_by ||
    (o.rule === "keep_item" && d.keep_item) || o.rule === "review" || o.rule === "auto_approve");
  $("#outcomes").replaceChildren(...(deciding.length ? deciding.map(outcome) : [el("li", t("none"), { class: "muted" })]));
  $("#all-outcomes").replaceChildren(...d.outcomes.map(outcome));
  $("#all-rules summary").textContent = t("all_rules", { n: d.outcomes.length });
  $("#shipments").replaceChildren(...(item.shipments.length ? item.shipments.map((s) => el("li",
    `${date(s.at)} · ${t(s.direction === "outbound" || s.direction === "inbound" ? s.direction : "shipments")} · ${s.carrier} ${s.tracking_number}`))
    : [el("li", t("none"), { class: "muted" })]));
  renderLabel(item);
  $("#order-summary").replaceChildren(...pairs([["order", order.order_id], ["placed", date(order.placed_at)],
    ["delivered", date(order.delivered_at)], ["email", order.customer.email], ["captured", money(order.payment.captured_amount, order.currency)],
    ["refundable", money(order.refundable_amount, order.currency)]]));
  fillTable($("#order-lines"), order.lines.map((l) => row(l.line_id, `${l.title} (${l.sku})`, l.quantity,
    money(l.unit_price, order.currency), l.returnable_quantity)));
  $("#timeline").replaceChildren(...events.map(timelineItem));
  prepareActions(item, fresh);
}

function gets(item) {
  const m = item.money;
  if (item.state === "rejected" || item.state === "cancelled") return t("gets_nothing");
  if (item.type === "exchange") {
    const skus = item.items.map((i) => `${i.replacement_sku || i.sku}${i.replacement_unit_price ? ` (${money(i.replacement_unit_price, m.currency)})` : ""}`);
    return [t("gets_replacement", { sku: skus.join(", ") }), m.difference_due > 0 ? t("pays_difference", { amount: money(m.difference_due, m.currency) }) : ""]
      .filter(Boolean).join(" · ");
  }
  if (item.type === "repair") return t("gets_repair");
  if (m.refund_total) return t("gets_refund", { amount: money(m.refund_total, m.currency) });
  if (m.store_credit_total) return t("gets_credit", { amount: money(m.store_credit_total, m.currency) });
  return t("gets_nothing");
}

function pairs(entries) {
  return entries.filter(([, value]) => value !== null && value !== undefined && value !== "")
    .flatMap(([key, value]) => [el("dt", t(key)), el("dd", value, { "data-field": key })]);
}

/** Fields another part of the service may add (info_request, rejection, money_override): shown when present. */
function extra(value, currency) {
  if (value === null || value === undefined) return null;
  if (typeof value === "number") return money(value, currency);
  if (typeof value !== "object") return String(value);
  const amount = value.refund_total ?? value.amount;
  return [amount !== undefined ? money(amount, currency) : "", ...TEXT_KEYS.map((k) => value[k]), value.at ? date(value.at) : ""]
    .filter(Boolean).join(" · ");
}

function showDetails(item, events, order) {
  const currency = item.money.currency;
  const approval = [...events].reverse().find((e) => e.type === "approve" && e.data.note);
  const dg = item.diagnosis;
  $("#details").replaceChildren(...pairs([
    ["type", t(`types.${item.type}`)], ["resolution", item.resolution ? t(`resolutions.${item.resolution}`) : ""],
    ["customer", [item.customer_id, order.customer.email].filter(Boolean).join(" · ")], ["order", item.order_id],
    ["delivered", date(order.delivered_at)], ["created", date(item.created_at)],
    ["due", item.sla_due_at ? `${due(item.sla_due_at)} (${date(item.sla_due_at)})` : ""],
    ["assignee", item.assignee ? (me && item.assignee === me.key_id ? `${t("me")} (${item.assignee})` : item.assignee) : t("unassigned")],
    ["issue_description", item.issue_description],
    ["replacement", item.type === "exchange" ? item.items.map((i) => `${i.replacement_sku || i.sku} ${money(i.replacement_unit_price ?? i.unit_price, currency)}`).join(", ") : ""],
    ["diagnosis", dg ? [dg.finding, `${t("in_warranty")}: ${t(dg.in_warranty ? "yes" : "no")}`, dg.quote_amount ? `${t("quote_amount")} ${money(dg.quote_amount, currency)}` : ""].filter(Boolean).join(" · ") : ""],
    ["approval_note", approval ? approval.data.note : ""],
    ["info_request", extra(item.info_request, currency)], ["rejection", extra(item.rejection, currency)],
    ["money_override", extra(item.money_override, currency)],
    ["survey", item.survey ? `${"★".repeat(item.survey.rating)} ${item.survey.comment || ""}` : ""],
  ]));
}

function outcome(o) {
  const item = el("li", null, { "data-rule": o.rule });
  item.append(el("strong", t(`rules.${o.rule}`)), " ",
    el("span", o.overridden_by ? t("results.overridden") : t(`results.${o.result}`), { class: `result-${o.overridden_by ? "pass" : o.result}` }));
  const detail = o.agent_detail || o.detail;  // agents read the fuller reason (the customer's history)
  if (detail) {
    const [text, language] = ruleDetail(detail);
    item.append(" — ", el("span", text, { lang: language, class: "detail" }));
  }
  if (o.override_reason) item.append(" — ", el("em", o.override_reason));
  return item;
}

/** The server writes a rule's explanation in English from a few templates; the catalogue's
 * rule_details turn them into the chosen language (then reason and condition codes into words).
 * Text no template covers stays English, marked lang="en". */
function ruleDetail(detail) {
  const templates = messages.rule_details || [];
  if (!templates.length) return [detail, "en"];
  let text = detail;
  for (const [pattern, replacement] of templates) text = text.replace(new RegExp(pattern, "g"), replacement);
  for (const [group, codes] of [["reasons", REASONS], ["conditions", CONDITIONS]]) {
    for (const code of codes) text = text.replace(new RegExp(`\\b${code}\\b`, "g"), t(`${group}.${code}`));
  }
  return /[a-z]{4,}/.test(text) ? [detail, "en"] : [text, document.documentElement.lang];
}

function refundItem(r) {
  const item = el("li", null, { "data-refund": r.id });
  const failing = ATTENTION.has(r.status) && !r.retried_by;
  if (failing) item.className = "attention";
  item.append(el("strong", money(r.amount, r.currency)), " ", el("span", t(`refund_statuses.${r.status}`), { class: "badge-soft" }),
    ` · ${date(r.created_at)}`);
  if (r.failure_reason) item.append(" · ", el("span", t("failure", { reason: r.failure_reason })));
  if (r.retried_by) item.append(" · ", el("span", t("retried_by", { id: r.retried_by })));
  if (failing && r.status !== "requires_action") {
    const retry = el("button", t("retry"), { type: "button", class: "primary", "data-retry": r.id });
    const result = el("p", null, { class: "result", role: "status", "data-result": `retry:${r.id}` });
    retry.addEventListener("click", () => act(result, () => api("POST", `/admin/v1/refunds/${encodeURIComponent(r.id)}/retry`)));
    item.append(" ", retry, result);
  }
  return item;
}

function timelineItem(e) {
  const parts = [t(`events.${e.type}`)];
  if (e.to_state && e.from_state !== e.to_state) parts.push(t("to_state", { state: t(`states.${e.to_state}`) }));
  const data = e.data || {};
  if (data.amount) parts.push(money(data.amount, current.money.currency));
  if ("assignee" in data) parts.push(data.assignee ? (me && data.assignee === me.key_id ? t("me") : data.assignee) : t("unassigned"));
  if (data.flag) parts.push(t(`flag_${data.flag}`));
  if (Array.isArray(data.overrides)) parts.push(...data.overrides.map((o) => `${t(`rules.${o.rule}`)}: ${o.reason}`));
  for (const key of TEXT_KEYS) if (typeof data[key] === "string" && data[key]) parts.push(`“${data[key]}”`);
  const item = el("li");
  item.append(el("time", date(e.at), { datetime: e.at }), " · ", el("span", who(e.actor_id, e.actor_role), { class: "who" }), " · ", parts.join(" · "));
  return item;
}

async function showPhotos(item) {
  for (const url of blobUrls.splice(0)) URL.revokeObjectURL(url);
  const holder = $("#photos");
  holder.replaceChildren();
  if (!item.photos.length) holder.append(el("span", t("none"), { class: "muted" }));
  for (const [index, photo] of item.photos.entries()) {
    const button = el("button", null, { type: "button", class: "thumb" });
    button.append(el("img", null, { src: await fetchBlob(photo.thumbnail_url), alt: `${t("photos")} ${index + 1}`, "data-photo": photo.id }));
    button.addEventListener("click", async () => {
      $("#viewer-image").src = await fetchBlob(photo.url);
      $("#viewer-image").alt = `${t("photos")} ${index + 1}`;
      $("#viewer").showModal();
    });
    holder.append(button);
    if (photo.matches_case_id) holder.append(el("span", t("photo_match", { id: photo.matches_case_id }), { class: "flags" }));
  }
}

/** The return label the service bought: its state, carrier, tracking code and cost, the carrier's
 * delivery scan, why it was held over the merchant's ceiling, and its PDF (fetched with the key,
 * as photos are). */
function renderLabel(item) {
  const label = item.label;
  if (!label) return $("#label").replaceChildren(el("span", t("none"), { class: "muted" }));
  const parts = [t(`label_status.${label.status}`), [label.carrier, label.service].filter(Boolean).join(" "),
    label.tracking_code, label.amount != null ? money(label.amount, label.currency) : null,
    label.hold ? holdText(label.hold, item.money.currency) : null,
    item.delivered_at ? t("label_delivered", { at: date(item.delivered_at) }) : null].filter(Boolean);
  $("#label").replaceChildren(el("span", parts.join(" · "), { "data-label": label.status }));
  if (label.status !== "bought") return;
  const button = el("button", t("label_download"), { type: "button", id: "label-download", class: "secondary" });
  button.addEventListener("click", async () => offerDownload(
    await fetchBlob(`/admin/v1/cases/${encodeURIComponent(item.id)}/label?format=pdf`), `return-label-${item.id}.pdf`));
  $("#label").append(" ", button);
}

/** Why a label waited for an agent: its rate against the ceiling, and who had it bought anyway. */
function holdText(hold, currency) {
  const rate = `${[hold.carrier, hold.service].join(" ")} ${money(hold.amount, hold.currency)}`;
  const why = hold.reason === "over_ceiling" ? t("label_hold_over", { rate, ceiling: money(hold.ceiling, hold.currency) })
    : t("label_hold_currency", { rate, currency });
  return hold.approved_by ? `${why}; ${t("label_hold_approved", { by: hold.approved_by })}` : why;
}

async function fetchBlob(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${sessionStorage.getItem("key")}` } });
  const url = URL.createObjectURL(await response.blob());
  blobUrls.push(url);
  return url;
}

function prepareActions(item, fresh) {
  // allowed_actions names the endpoints themselves, as each form's data-action does
  const allowed = new Set(item.allowed_actions);
  for (const form of document.querySelectorAll("#actions form")) {
    form.hidden = !allowed.has(form.dataset.action);
    if (fresh) resetForm(form);
  }
  const next = NEXT.find((action) => allowed.has(action));
  $("#next").hidden = !next;
  $("#next-none").hidden = Boolean(next);
  $("#next").textContent = next ? t(LABELS[next]) : "";
  $("#next").dataset.target = next || "";
  $("#approve-keep").hidden = item.type !== "return";
  $("#approve-responsibility").hidden = undecided(item).length === 0;
  const rules = $('#actions form[data-action="approve"] select[name="override_rule"]');
  rules.replaceChildren(el("option", t("none"), { value: "" }), ...item.decision.outcomes.map((o) => el("option", t(`rules.${o.rule}`), { value: o.rule })));
  $("#quote-label").textContent = t("quote", { currency: item.money.currency });
  $("#receive-items").replaceChildren(...item.items.map((i) => {
    const line = el("fieldset", null, { "data-line": i.line_id });
    line.append(el("legend", `${i.line_id} · ${i.sku}`));
    const quantity = el("label");
    quantity.append(el("span", t("quantity")), " ",
      el("input", null, { type: "number", min: "0", max: String(i.quantity), value: String(i.quantity), name: `quantity:${i.line_id}` }));
    const condition = el("label");
    const select = el("select", null, { name: `condition:${i.line_id}` });
    select.append(...CONDITIONS.map((c) => el("option", t(`conditions.${c}`), { value: c })));
    condition.append(el("span", t("condition")), " ", select);
    line.append(quantity, " ", condition);
    return line;
  }));
}

/** The items whose responsibility waits for the agent (reason "other", not yet decided). */
function undecided(item) {
  return item.items.filter((i) => i.responsibility === "unknown");
}

function resetForm(form) {
  form.reset();
  delete form.dataset.confirming;
  const submit = form.querySelector("button[type=submit]");
  if (submit?.dataset.i18n) submit.textContent = t(submit.dataset.i18n);
  form.querySelector(".result").textContent = "";
}

function bodyFor(action, form) {
  const data = new FormData(form);
  const currency = current.money.currency;
  if (action === "approve") {
    const body = { note: data.get("note") || null, overrides: [] };
    if (current.type === "return" && data.get("keep_item") === "on") body.keep_item = true;
    const who = data.get("responsibility");
    const open = undecided(current);
    if (open.length) body.responsibility = open.map((i) => ({ line_id: i.line_id, responsibility: who }));
    if (data.get("override_rule")) {
      if (!data.get("override_reason")) throw new Error(t("override_needs_reason"));
      body.overrides.push({ rule: data.get("override_rule"), reason: data.get("override_reason") });
    }
    const amount = toMinor(data.get("money_override"), currency);
    if (amount !== null) {
      if (!data.get("money_override_reason")) throw new Error(t("override_needs_reason"));
      body.money_override = { refund_total: amount, reason: data.get("money_override_reason") };
    }
    return body;
  }
  if (action === "receive") {
    return { items: current.items.map((i) => ({
      line_id: i.line_id, quantity: Number(data.get(`quantity:${i.line_id}`)), condition: data.get(`condition:${i.line_id}`),
    })) };
  }
  if (action === "repair/diagnose") {
    return { finding: data.get("finding"), in_warranty: data.get("in_warranty") === "on", quote_amount: toMinor(data.get("quote_amount"), currency) };
  }
  if (action === "assign") return { assignee: data.get("assignee") || null };
  if (["close", "label/buy", "label/decline"].includes(action)) return { note: data.get("note") || null };
  return Object.fromEntries(data);
}

/** Runs an agent action; its outcome is written into ``result``, beside the control that caused it.
 * "Done." stays until the next action; when the action's form is gone (the case moved on), the
 * word goes beside the next-step button, where the eye is. */
async function act(result, call) {
  for (const node of document.querySelectorAll("#case .result")) node.textContent = "";
  result.className = "result";
  result.textContent = t("loading");
  const selector = result.dataset.result ? `[data-result="${result.dataset.result}"]` : null;
  try {
    await call();
    await openCase(current.id, { focus: false });
    const target = (selector && document.querySelector(selector)) || result;
    const visible = target.isConnected && target.parentElement.offsetParent !== null;
    const shown = visible ? target : $("#last-result");
    shown.className = "result done";
    shown.textContent = t("done");
  } catch (error) {
    if (error instanceof SignedOut) return;
    result.className = "result error";
    if (error instanceof Stale) {
      result.textContent = `${t("stale")} `;
      const reload = el("button", t("reload"), { type: "button" });
      reload.addEventListener("click", () => openCase(current.id, { focus: false }));
      result.append(reload);
    } else {
      result.textContent = error.message;
    }
  }
}

// ------------------------------------------------------------------ wiring

function route() {
  if (!sessionStorage.getItem("key")) return show("sign-in");
  const match = location.hash.match(/^#\/cases\/([^/?#]+)/);
  return match ? openCase(decodeURIComponent(match[1])) : showQueue();
}

async function start() {
  try {
    me = await api("GET", "/admin/v1/me");
    $("#whoami").textContent = t("signed_in_as", { id: me.key_id });
  } catch (error) {
    if (error instanceof SignedOut) return;
    me = null; // an older server without /me: everything but "assign to me" still works
  }
  notice("");
  await route();
}

document.addEventListener("DOMContentLoaded", async () => {
  const language = sessionStorage.getItem("language") || (navigator.language.startsWith("zh") ? "zh" : "en");
  await loadLanguage(language);
  $("#language").value = language;
  $("#language").addEventListener("change", async (e) => {
    await loadLanguage(e.target.value);
    if (sessionStorage.getItem("key")) await route();
  });
  $("#case h2").tabIndex = -1;
  $("#next-bar").append(el("p", null, { id: "last-result", class: "result", role: "status" }));
  $("#sign-in-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    sessionStorage.setItem("key", $("#api-key").value.trim());
    $("#api-key").value = "";
    await start();
  });
  $("#sign-out").addEventListener("click", () => signOut());
  $("#filters").addEventListener("submit", (e) => { e.preventDefault(); showQueue(); });
  $("#more").addEventListener("click", () => showQueue(true));
  $("#next").addEventListener("click", () => {
    const form = document.querySelector(`#actions form[data-action="${$("#next").dataset.target}"]`);
    form.scrollIntoView({ block: "center" });
    form.querySelector("input:not([type=checkbox]), select, button").focus();
  });
  $("#assign-me").addEventListener("click", () => {
    const form = $('#actions form[data-action="assign"]');
    if (!me) return;
    form.elements.assignee.value = me.key_id;
    form.requestSubmit();
  });
  for (const form of document.querySelectorAll("#actions form")) {
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const submit = form.querySelector("button[type=submit]");
      if (submit.dataset.confirm && form.dataset.confirming !== "1") {
        form.dataset.confirming = "1";
        submit.textContent = t(submit.dataset.confirm);
        form.querySelector(".result").textContent = t("confirm_hint");
        return;
      }
      const action = form.dataset.action;
      act(form.querySelector(".result"), async () => {
        const body = bodyFor(action, form);
        await api("POST", `/admin/v1/cases/${encodeURIComponent(current.id)}/${action}`, body, { "If-Match": `"${current.version}"` });
        resetForm(form);
      });
    });
  }
  window.addEventListener("hashchange", route);
  if (sessionStorage.getItem("key")) {
    await start();
  } else {
    show("sign-in");
  }
});

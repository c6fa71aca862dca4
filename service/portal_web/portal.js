// The customer's returns portal: a small page over the public storefront API, with the customer's
// own credential (the signed token of a portal link, scoped to one order). The token arrives in
// the URL's fragment, is kept in sessionStorage and taken out of the address bar at once. Every
// piece of text from the API is set with textContent, never parsed as HTML. Pages are hash routes
// (#/ the order, #/quote, #/cases/<id>), so Back, reload and links in e-mails work.
"use strict";

const TYPES = ["return", "exchange", "repair"];
const REASONS = ["changed_mind", "wrong_size", "ordered_by_mistake", "better_price_elsewhere", "defective",
  "damaged_in_transit", "wrong_item", "not_as_described", "arrived_late", "missing_parts", "other"];
// What each kind of request is checked with, per line, to say up front what is possible: the
// reason a customer most often gives for it.
const PROBES = { return: "changed_mind", exchange: "wrong_size", repair: "defective" };
// A rule that fails for a line whatever the customer says (a final sale depends on the reason).
const FINAL = new Set(["quantity", "return_window", "unpriced", "other"]);
const TOKEN = "portal_token";
const LANGUAGE = "portal_language";

let messages = {};
let order = null;
let availability = {}; // line_id → {return|exchange|repair: null (possible) or why not}
let bonusPercent = 0;
let chosenPhotos = []; // [{file, url}]
let draft = null; // {body, key, quote}: the request being prepared, its Idempotency-Key and preview
let current = null; // the case on screen
let intent = null; // {case, do, rating} from an e-mail's link, used once
const caseBlobs = [];

const t = (key, vars) => translate(messages, key, vars); // $, el, money…: /console/ui.js, shared with the console

/** Text that came from the shop or the customer: never translated, never HTML. */
const data = (tag, text) => el(tag, text, { translate: "no", class: "data" });

const when = (iso, style = { dateStyle: "medium", timeStyle: "short" }) => new Intl.DateTimeFormat(locale(), style).format(new Date(iso));

function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------- the credential

const token = () => sessionStorage.getItem(TOKEN);

/** The token's claims {m, o, c, lang, exp}: signed, not secret, so the page may read them. */
function claims(value) {
  try {
    const part = value.split(".")[2].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

class Problem extends Error {
  constructor(message, status = 0, code = null) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

class SignedOut extends Error {}

async function api(method, path, { body, form, headers = {} } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${token()}`, ...(body ? { "Content-Type": "application/json" } : {}), ...headers },
      body: form || (body ? JSON.stringify(body) : undefined),
    });
  } catch {
    throw new Problem(t("network"));
  }
  if (response.status === 401) {
    showLookup(true);
    throw new SignedOut();
  }
  const payload = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    // the service's words are English: the catalogue says the usual problems in the page's language
    const said = payload?.code && messages.errors?.[payload.code] ? t(`errors.${payload.code}`) : payload?.detail || payload?.title;
    throw new Problem(said || `HTTP ${response.status}`, response.status, payload?.code);
  }
  return payload;
}

// ---------------------------------------------------------------- language

async function loadLanguage(language) {
  const response = await fetch(`/portal/i18n/${language}.json`);
  messages = await response.json();
  document.documentElement.lang = language === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  $("#language").value = language;
  $("#language").setAttribute("aria-label", t("language"));
  sessionStorage.setItem(LANGUAGE, language);
}

function firstLanguage() {
  const chosen = sessionStorage.getItem(LANGUAGE);
  if (chosen) return chosen;
  const fromLink = token() && claims(token())?.lang;
  return (fromLink || navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
}

// ---------------------------------------------------------------- pages

function show(section) {
  for (const id of ["lookup", "order", "quote", "case"]) $(`#${id}`).hidden = id !== section;
  notice("");
}

function notice(text, kind = "") {
  $("#notice").textContent = text || "";
  $("#notice").className = kind;
  $("#notice").hidden = !text;
}

function failed(error) {
  if (!(error instanceof SignedOut)) notice(error instanceof Problem ? error.message : t("failed", { error: error.message }), "error");
}

async function route() {
  const found = token() && claims(token());
  if (!found || found.exp * 1000 <= Date.now()) return showLookup(Boolean(token()));
  const hash = location.hash || "#/";
  const opened = hash.match(/^#\/cases\/([^/]+)$/);
  try {
    if (opened) return await showCase(decodeURIComponent(opened[1]));
    if (hash === "#/quote" && draft?.quote) return showQuote();
    if (hash !== "#/") history.replaceState(null, "", `${location.pathname}${location.search}#/`);
    return await showOrder();
  } catch (error) {
    failed(error);
  }
}

/** The link's fragment (#t=…&case=…&do=…&rating=…) read once, then out of the address bar. */
function takeFragment() {
  if (!location.hash || location.hash.startsWith("#/")) return;
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("t")) {
    if (params.get("t") !== token()) sessionStorage.removeItem(LANGUAGE); // a new link speaks its own language
    sessionStorage.setItem(TOKEN, params.get("t"));
  }
  const caseId = params.get("case");
  if (caseId && params.get("do")) intent = { case: caseId, do: params.get("do"), rating: params.get("rating") };
  history.replaceState(null, "", `${location.pathname}${location.search}${caseId ? `#/cases/${encodeURIComponent(caseId)}` : "#/"}`);
}

// ---------------------------------------------------------------- lookup by order number and e-mail

function showLookup(expired) {
  const old = token() && claims(token());
  sessionStorage.removeItem(TOKEN);
  order = null;
  show("lookup");
  $("#lookup-expired").hidden = !expired;
  const merchant = new URLSearchParams(location.search).get("m") || old?.m || "";
  $("#lookup-merchant").value = merchant;
  $("#merchant-field").hidden = Boolean(merchant);
  if (old?.o && !$("#lookup-order").value) $("#lookup-order").value = old.o;
}

async function lookup(event) {
  event.preventDefault();
  const form = event.target;
  if (!form.checkValidity()) return form.reportValidity();
  const result = $("#lookup-result");
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const response = await fetch("/v1/portal-sessions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ merchant: form.merchant.value.trim(), order_id: form.order_id.value.trim(), email: form.email.value.trim() }),
    });
    // one answer whatever the service found: only "too many tries" is worth telling apart
    result.textContent = response.status === 429 ? t("lookup_later") : t("lookup_sent");
  } catch {
    result.textContent = t("network");
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- the order and the draft

async function showOrder() {
  show("order");
  if (!order) {
    notice(t("loading"));
    order = await api("GET", `/v1/orders/${encodeURIComponent(claims(token()).o)}`);
    availability = {};
    renderOrder();
    notice("");
    checkLines().catch(failed);
  }
  const cases = await api("GET", `/v1/cases?order_id=${encodeURIComponent(order.order_id)}&limit=100`);
  $("#requests").hidden = !cases.items.length;
  $("#order-cases").replaceChildren(...cases.items.map((c) => {
    const item = el("li", null, { "data-case": c.id });
    const link = el("a", null, { href: `#/cases/${encodeURIComponent(c.id)}` });
    link.append(el("strong", t(`types.${c.type}`)), " ", data("span", c.id));
    item.append(link, el("span", t(`states.${c.state}`), { class: "badge" }), el("span", when(c.created_at), { class: "muted" }));
    return item;
  }));
}

function renderOrder() {
  $("#order-title").replaceChildren(`${t("order")} `, data("span", order.order_id));
  const dates = [t("placed_on", { date: when(order.placed_at, { dateStyle: "long" }) })];
  if (order.delivered_at) dates.push(t("delivered_on", { date: when(order.delivered_at, { dateStyle: "long" }) }));
  $("#order-dates").textContent = dates.join(" · ");
  const kept = linesState();
  $("#lines").replaceChildren(...order.lines.map((line, index) => lineItem(line, index)));
  restoreLines(kept);
  updateDraftForm();
}

function lineItem(line, index) {
  const item = el("li", null, { "data-line": line.line_id });
  const pick = el("input", null, { type: "checkbox", id: `pick-${index}`, name: "pick", value: line.line_id, "aria-describedby": `avail-${index}` });
  const label = el("label", null, { for: `pick-${index}` });
  label.append(data("strong", line.title), el("span", t("each", { price: money(line.unit_price, order.currency) }), { class: "muted" }),
    el("span", t("bought", { n: line.quantity }), { class: "muted" }));
  const avail = el("p", line.returnable_quantity ? t("checking") : t("nothing_left"), { id: `avail-${index}`, class: "avail" });
  const head = el("div", null, { class: "line-head" });
  head.append(pick, label);
  const details = el("div", null, { class: "line-details", hidden: "" });
  const quantity = el("select", null, { id: `quantity-${index}`, name: "quantity" });
  for (let n = 1; n <= line.returnable_quantity; n += 1) quantity.append(el("option", n, { value: n }));
  const reason = el("select", null, { id: `reason-${index}`, name: "reason" });
  reason.append(el("option", t("choose"), { value: "" }), ...REASONS.map((r) => el("option", t(`reasons.${r}`), { value: r })));
  const note = el("input", null, { id: `note-${index}`, name: "note", maxlength: "4000", autocomplete: "off" });
  const replacement = el("input", null, { id: `replacement-${index}`, name: "replacement_sku", maxlength: "200", autocomplete: "off",
    placeholder: t("replacement_hint") });
  details.append(
    el("label", t("quantity"), { for: quantity.id }), quantity,
    el("label", t("reason"), { for: reason.id }), reason,
    el("label", t("item_note"), { for: note.id, class: "note-label" }), note,
    el("label", t("replacement"), { for: replacement.id, class: "exchange-only" }), replacement,
  );
  replacement.classList.add("exchange-only");
  pick.disabled = !line.returnable_quantity;
  pick.addEventListener("change", () => { details.hidden = !pick.checked; });
  item.append(head, avail, details);
  return item;
}

/** What the customer filled in per line, to keep it when the page is drawn again (language). */
function linesState() {
  const state = {};
  for (const item of document.querySelectorAll("#lines li")) {
    state[item.dataset.line] = Object.fromEntries([...item.querySelectorAll("input, select")].map((f) => [f.name, f.type === "checkbox" ? f.checked : f.value]));
  }
  return state;
}

function restoreLines(state) {
  for (const item of document.querySelectorAll("#lines li")) {
    const kept = state[item.dataset.line];
    if (!kept) continue;
    for (const field of item.querySelectorAll("input, select")) {
      if (field.type === "checkbox") field.checked = kept[field.name];
      else field.value = kept[field.name];
    }
    item.querySelector(".line-details").hidden = !kept.pick;
  }
}

/** Per line and kind of request, whether the shop's policy allows it: a preview of one item. */
async function checkLines() {
  const open = order.lines.filter((line) => line.returnable_quantity > 0);
  await Promise.all(open.flatMap((line) => TYPES.map(async (type) => {
    const body = { order_id: order.order_id, type, items: [{ line_id: line.line_id, quantity: 1, reason: PROBES[type] }] };
    if (type === "exchange") body.items[0].replacement_sku = line.sku;
    if (type === "repair") body.issue_description = "-";
    let why = null;
    try {
      const quote = await api("POST", "/v1/cases/preview", { body });
      const failing = quote.decision.outcomes.find((o) => o.result === "fail");
      why = failing ? (failing.rule in (messages.why || {}) ? failing.rule : "other") : null;
      const bonus = quote.decision.outcomes.find((o) => o.rule === "store_credit_bonus");
      const percent = bonus && /([\d.]+)% bonus/.exec(bonus.detail);
      if (percent) bonusPercent = Number(percent[1]);
    } catch (error) {
      if (error instanceof SignedOut) throw error;
      why = error.code === "policy_currency_unpriced" ? "unpriced" : "other";
    }
    (availability[line.line_id] ||= {})[type] = why;
  })));
  updateDraftForm();
}

function selectedType() {
  return document.querySelector("#draft input[name=type]:checked").value;
}

/** The form as the chosen kind of request needs it: which fields, which lines, what each line allows. */
function updateDraftForm() {
  const type = selectedType();
  $("#issue-field").hidden = type !== "repair";
  $("#resolution-choice").hidden = type !== "return";
  for (const node of document.querySelectorAll("#lines .exchange-only")) node.hidden = type !== "exchange";
  $("#bonus").textContent = bonusPercent
    ? t("bonus", { amount: new Intl.NumberFormat(locale(), { style: "percent", maximumFractionDigits: 2 }).format(bonusPercent / 100) })
    : "";
  order.lines.forEach((line, index) => {
    if (!line.returnable_quantity || !availability[line.line_id]) return;
    const found = availability[line.line_id];
    const possible = TYPES.filter((k) => found[k] === null).map((k) => t(`types.${k}`));
    const reasons = TYPES.filter((k) => found[k] !== null).map((k) => t("cannot", { type: t(`types.${k}`), why: t(`why.${found[k]}`) }));
    $(`#avail-${index}`).textContent = [possible.length ? t("can", { what: possible.join(locale() === "zh-CN" ? "、" : ", ") }) : "", ...reasons]
      .filter(Boolean).join(" · ");
    const pick = $(`#pick-${index}`);
    pick.disabled = FINAL.has(found[type]);
    if (pick.disabled && pick.checked) {
      pick.checked = false;
      pick.closest("li").querySelector(".line-details").hidden = true;
    }
  });
}

function addPhotos(event) {
  for (const file of event.target.files) chosenPhotos.push({ file, url: URL.createObjectURL(file) });
  event.target.value = "";
  renderChosenPhotos();
}

function renderChosenPhotos() {
  $("#chosen-photos").replaceChildren(...chosenPhotos.map((photo, index) => {
    const item = el("li");
    const remove = el("button", t("remove"), { type: "button", "aria-label": `${t("remove")}: ${t("photo_alt", { n: index + 1 })}` });
    remove.addEventListener("click", () => {
      URL.revokeObjectURL(photo.url);
      chosenPhotos.splice(index, 1);
      renderChosenPhotos();
    });
    item.append(el("img", null, { src: photo.url, alt: t("photo_alt", { n: index + 1 }) }), remove);
    return item;
  }));
}

/** The request as the API takes it, or a message saying what is missing. */
function draftBody() {
  const type = selectedType();
  const items = [];
  for (const item of document.querySelectorAll("#lines li")) {
    const field = (name) => item.querySelector(`[name="${name}"]`);
    if (!field("pick")?.checked) continue;
    const reason = field("reason").value;
    if (!reason) throw new Error(t("pick_reason"));
    const note = field("note").value.trim();
    if (reason === "other" && !note) throw new Error(t("need_note"));
    const entry = { line_id: item.dataset.line, quantity: Number(field("quantity").value), reason, ...(note ? { note } : {}) };
    if (type === "exchange") {
      const sku = field("replacement_sku").value.trim();
      if (!sku) throw new Error(t("need_replacement"));
      entry.replacement_sku = sku;
    }
    items.push(entry);
  }
  if (!items.length) throw new Error(t("pick_one"));
  const body = { order_id: order.order_id, type, items };
  if (type === "return") body.resolution = document.querySelector("#draft input[name=resolution]:checked").value;
  if (type === "repair") {
    body.issue_description = $("#issue").value.trim();
    if (!body.issue_description) throw new Error(t("need_issue"));
  }
  const note = $("#customer-note").value.trim();
  if (note) body.customer_note = note;
  return body;
}

async function toQuote(event) {
  event.preventDefault();
  let body;
  try {
    body = draftBody();
  } catch (error) {
    $("#draft-error").textContent = error.message;
    return;
  }
  $("#draft-error").textContent = "";
  try {
    const quote = await api("POST", "/v1/cases/preview", { body });
    // one key per request as it will be sent: a double tap or a retry sends the same one (one case)
    const same = draft && JSON.stringify(draft.body) === JSON.stringify(body);
    draft = { body, key: same ? draft.key : randomKey(), quote };
    location.hash = "#/quote";
  } catch (error) {
    if (!(error instanceof SignedOut)) $("#draft-error").textContent = error.message;
  }
}

// ---------------------------------------------------------------- the quote

const lineOf = (lineId) => order?.lines.find((line) => line.line_id === lineId);

function itemRow(item) {
  const row = el("li");
  row.append(`${item.quantity} × `, data("strong", lineOf(item.line_id)?.title ?? item.line_id));
  row.append(el("span", t("item_reason", { reason: t(`reasons.${item.reason}`) }), { class: "muted" }));
  if (item.replacement_sku) row.append(el("span", `${t("instead")}: `, { class: "muted" }), data("span", item.replacement_sku));
  if (item.note) row.append(data("q", item.note));
  return row;
}

/** The money of a quote or a case in words: what is deducted, who pays the shipping, what comes back. */
function moneyRows(figures, type, decision) {
  const m = figures;
  const cur = (amount) => money(amount, m.currency);
  const shipping = m.return_shipping;
  const rows = [];
  if (type !== "repair") rows.push([t("items_value"), cur(m.items_total)]);
  if (m.restocking_fee) rows.push([t("restocking_fee"), `− ${cur(m.restocking_fee)}`]);
  if (type !== "repair") {
    const total = shipping.customer_share + shipping.merchant_share;
    rows.push([t("shipping"), decision?.keep_item ? t("shipping_none") : {
      customer: t("shipping_customer", { amount: cur(shipping.customer_share) }),
      merchant: t("shipping_merchant", { amount: cur(shipping.merchant_share) }),
      split: t("shipping_split", { customer: cur(shipping.customer_share), total: cur(total) }),
      undecided: t("shipping_undecided", { amount: cur(shipping.undecided_share || 0) }),
    }[shipping.payer]]);
  }
  if (m.original_shipping_refund) rows.push([t("original_shipping"), cur(m.original_shipping_refund)]);
  let gets;
  if (type === "repair") gets = t("get_repair");
  else if (type === "exchange") gets = m.refund_total ? t("get_exchange_refund", { amount: cur(m.refund_total) }) : t("get_exchange");
  else if (m.store_credit_total) gets = m.store_credit_bonus ? t("get_credit", { amount: cur(m.store_credit_total), bonus: cur(m.store_credit_bonus) })
    : t("get_credit_plain", { amount: cur(m.store_credit_total) });
  else gets = t("get_refund", { amount: cur(m.refund_total) });
  rows.push([t("you_get"), gets]);
  if (m.difference_due) rows.push(["", t("difference_due", { amount: cur(m.difference_due) })]);
  return rows.flatMap(([term, value]) => [el("dt", term), el("dd", value)]);
}

function showQuote() {
  show("quote");
  const { body, quote } = draft;
  $("#quote-items").replaceChildren(...body.items.map(itemRow));
  $("#quote-money").replaceChildren(...moneyRows(quote.money, body.type, quote.decision));
  const blocked = quote.decision.outcomes.filter((o) => o.result === "fail");
  $("#quote-blocked").hidden = !blocked.length;
  $("#quote-blocked").textContent = blocked.length
    ? `${t("not_possible")} ${blocked.map((o) => t(`why.${o.rule in messages.why ? o.rule : "other"}`)).join("; ")}` : "";
  const notes = [];
  if (quote.decision.keep_item) notes.push(t("keep_item"));
  if (quote.decision.requires_review && !blocked.length) notes.push(t("review"));
  $("#quote-notes").textContent = notes.join(" ");
  $("#submit").hidden = Boolean(blocked.length);
  $("#submit").disabled = false;
  $("#submit-result").textContent = "";
  $("#submit").focus();
}

async function submit() {
  const button = $("#submit");
  if (button.disabled) return;
  button.disabled = true;
  const result = $("#submit-result");
  result.className = "result";
  result.textContent = t("sending");
  let opened;
  try {
    opened = await api("POST", "/v1/cases", { body: draft.body, headers: { "Idempotency-Key": draft.key } });
  } catch (error) {
    if (error instanceof SignedOut) return;
    result.className = "result error";
    result.textContent = error.message;
    button.disabled = false;
    return;
  }
  // photos belong to a case, so they follow it at once: for the customer, one step
  let photoError = null;
  for (const [index, photo] of chosenPhotos.entries()) {
    result.textContent = t("sending_photo", { n: index + 1, total: chosenPhotos.length });
    const form = new FormData();
    form.append("file", photo.file, photo.file.name || "photo.jpg");
    try {
      await api("POST", `/v1/cases/${encodeURIComponent(opened.id)}/photos`, { form });
    } catch (error) {
      photoError = error;
      break;
    }
  }
  for (const photo of chosenPhotos) URL.revokeObjectURL(photo.url);
  chosenPhotos = [];
  renderChosenPhotos();
  draft = null;
  order = null; // what is left to return changed
  $("#draft").reset();
  history.pushState(null, "", `#/cases/${encodeURIComponent(opened.id)}`);
  const trouble = photoError && !(photoError instanceof SignedOut);
  await showCase(opened.id, trouble ? t("photo_failed", { error: photoError.message }) : "", trouble ? "error" : "").catch(failed);
}

// ---------------------------------------------------------------- a case

async function showCase(caseId, message = "", kind = "") {
  const shown = !$("#case").hidden && current?.id === caseId;
  if (!shown) show("case");
  if (!order) order = await api("GET", `/v1/orders/${encodeURIComponent(claims(token()).o)}`);
  current = await api("GET", `/v1/cases/${encodeURIComponent(caseId)}`);
  renderCase();
  if (message) notice(message, kind);
  if (intent && intent.case === caseId) {
    const wanted = intent;
    intent = null;
    if (wanted.do === "info") $("#answer")?.focus();
    if ((wanted.do === "survey" || wanted.do === "rate") && $('form[data-action="survey"]')) {
      const star = document.querySelector(`form[data-action="survey"] input[value="${Number(wanted.rating)}"]`);
      if (star) star.checked = true;
      $('form[data-action="survey"] button[type=submit]').focus();
    }
  }
}

function renderCase() {
  const c = current;
  const allowed = new Set(c.allowed_actions);
  $("#case-title").replaceChildren(`${t(`types.${c.type}`)} `, data("span", c.id));
  $("#case-state").textContent = t(`states.${c.state}`);
  const kept = c.state === "approved" && !allowed.has("return-shipment") && c.decision.keep_item;
  $("#next-text").textContent = t(`next_text.${kept ? "approved_kept" : c.state}`);
  $("#next-actions").replaceChildren(...nextActions(c, allowed));
  $("#case-items").replaceChildren(...c.items.map(itemRow));
  $("#case-money").replaceChildren(...moneyRows(c.money, c.type, c.decision));
  $("#case-money-block").hidden = c.type === "repair" && !c.refunds.length;
  $("#case-refunds").replaceChildren(...c.refunds.map((r) => el("li", t("refund_line", {
    amount: money(r.amount, r.currency), status: t(`refund_statuses.${r.status}`) }), { "data-refund": r.id })));
  if (c.money.store_credit_total && ["refunded", "closed"].includes(c.state)) {
    $("#case-refunds").append(el("li", t("store_credit", { amount: money(c.money.store_credit_total, c.money.currency) })));
  }
  $("#timeline").replaceChildren(...c.timeline.map((entry) => {
    const item = el("li");
    item.append(el("time", when(entry.at), { datetime: entry.at }), " ", el("span", t(`events.${entry.event}`)));
    return item;
  }));
  renderCasePhotos(c);
}

/** The return label the service bought: its carrier and tracking number, and the PDF, fetched
 * with the customer's token (a plain link could not carry it) and handed over as a download. */
function labelPart(c) {
  const box = el("section", null, { class: "label", "aria-labelledby": "label-title" });
  const line = el("p");
  line.append(`${t("carrier")}: `, data("span", c.label.carrier || ""), ` · ${t("tracking_number")}: `,
    data("span", c.label.tracking_code || ""));
  const button = el("button", t("label_download"), { type: "button", id: "label-download" });
  const said = el("p", null, { role: "status" });
  button.addEventListener("click", () => downloadLabel(c.id, button, said));
  box.append(el("h4", t("label_title"), { id: "label-title" }), el("p", t("label_hint")), line, button, said);
  return box;
}

async function downloadLabel(caseId, button, said) {
  button.disabled = true;
  said.textContent = "";
  try {
    const response = await fetch(`/v1/cases/${encodeURIComponent(caseId)}/label?format=pdf`,
      { headers: { Authorization: `Bearer ${token()}` } });
    if (response.status === 401) return showLookup(true);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const url = URL.createObjectURL(await response.blob());
    offerDownload(url, `return-label-${caseId}.pdf`);
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch {
    said.textContent = t("network");
  } finally {
    button.disabled = false;
  }
}

function nextActions(c, allowed) {
  const parts = [];
  if (c.rejection) {
    const why = el("p");
    why.append(el("strong", `${t("rejection_reason")}: `), data("span", c.rejection.reason));
    parts.push(why);
    if (c.rejection.note) parts.push(data("p", c.rejection.note));
  }
  if (c.label?.status === "bought" && ["approved", "in_transit"].includes(c.state)) parts.push(labelPart(c));
  if (allowed.has("return-shipment")) {
    parts.push(el("h4", t("send_to")));
    parts.push(c.return_address ? data("address", c.return_address) : el("p", t("send_to_missing")));
    parts.push(actionForm("return-shipment", t("shipment_title"), [["carrier", t("carrier"), "input"], ["tracking_number", t("tracking_number"), "input"]],
      t("shipment_submit")));
  }
  for (const shipment of c.shipments.filter((s) => s.direction === "return")) {
    const line = el("p", `${t("shipped")} `, { class: "shipment" });
    line.append(`${t("carrier")}: `, data("span", shipment.carrier), ` · ${t("tracking_number")}: `, data("span", shipment.tracking_number));
    parts.push(line);
  }
  if (allowed.has("info") && c.info_request) {
    const question = el("p");
    question.append(el("strong", `${t("question")}: `), data("span", c.info_request.message));
    parts.push(question, actionForm("info", null, [["message", t("answer"), "textarea", "answer"]], t("answer_submit")));
  }
  if (allowed.has("quote/accept") && c.diagnosis) {
    const finding = el("p");
    finding.append(el("strong", `${t("finding")}: `), data("span", c.diagnosis.finding));
    parts.push(finding, el("p", t("quote_offer", { amount: money(c.diagnosis.quote_amount || 0, c.money.currency) })));
    const buttons = el("div", null, { class: "buttons" });
    for (const [action, label, primary] of [["quote/accept", t("accept_quote"), true], ["quote/decline", t("decline_quote"), false]]) {
      const button = el("button", label, { type: "button", "data-action": action, ...(primary ? { class: "primary" } : {}) });
      button.addEventListener("click", () => act(action, null, button));
      buttons.append(button);
    }
    parts.push(buttons);
  }
  if (allowed.has("photos")) parts.push(photoForm());
  if (allowed.has("survey")) parts.push(surveyForm());
  if (c.survey) parts.push(el("p", t("survey_thanks", { rating: c.survey.rating }), { id: "survey-thanks" }));
  if (allowed.has("cancel")) {
    const cancel = el("button", t("cancel_request"), { type: "button", id: "cancel", class: "quiet" });
    cancel.addEventListener("click", () => {
      if (cancel.dataset.confirm) return act("cancel", null, cancel);
      cancel.dataset.confirm = "1";
      cancel.textContent = t("cancel_confirm");
    });
    parts.push(cancel);
  }
  return parts;
}

function actionForm(action, title, fields, submitLabel) {
  const form = el("form", null, { "data-action": action, novalidate: "" });
  if (title) form.append(el("h4", title));
  for (const [name, label, tag, id] of fields) {
    const field = el(tag, null, { name, id: id || `${action.replace("/", "-")}-${name}`, required: "", maxlength: tag === "textarea" ? "4000" : "200" });
    form.append(el("label", label, { for: field.id }), field);
  }
  form.append(el("button", submitLabel, { type: "submit", class: "primary" }), el("p", null, { class: "result", role: "status" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!form.checkValidity()) return form.reportValidity();
    const body = Object.fromEntries(fields.map(([name]) => [name, form.elements[name].value.trim()]));
    act(action, body, form.querySelector("button"));
  });
  return form;
}

function surveyForm() {
  const form = el("form", null, { "data-action": "survey" });
  form.append(el("h4", t("survey_title")));
  const stars = el("fieldset", null, { class: "stars" });
  stars.append(el("legend", t("rating")));
  for (const n of [5, 4, 3, 2, 1]) {
    const label = el("label", null, { class: "choice" });
    label.append(el("input", null, { type: "radio", name: "rating", value: n, required: "" }), el("span", t(`stars.${n}`)));
    stars.append(label);
  }
  const comment = el("textarea", null, { id: "survey-comment", name: "comment", rows: "3", maxlength: "4000" });
  form.append(stars, el("label", t("comment"), { for: comment.id }), comment,
    el("button", t("survey_submit"), { type: "submit", class: "primary" }), el("p", null, { class: "result", role: "status" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!form.checkValidity()) return form.reportValidity();
    const text = comment.value.trim();
    act("survey", { rating: Number(form.elements.rating.value), ...(text ? { comment: text } : {}) }, form.querySelector("button"));
  });
  return form;
}

function photoForm() {
  const form = el("form", null, { "data-action": "photos" });
  const input = el("input", null, { type: "file", id: "more-photos", accept: "image/*", capture: "environment", multiple: "" });
  form.append(el("label", t("more_photos"), { for: input.id }), input, el("button", t("upload"), { type: "submit" }),
    el("p", null, { class: "result", role: "status" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!input.files.length) return;
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      for (const file of input.files) {
        const upload = new FormData();
        upload.append("file", file, file.name || "photo.jpg");
        await api("POST", `/v1/cases/${encodeURIComponent(current.id)}/photos`, { form: upload });
      }
      await showCase(current.id, t("done"));
    } catch (error) {
      button.disabled = false;
      if (!(error instanceof SignedOut)) form.querySelector(".result").textContent = error.message;
    }
  });
  return form;
}

/** One action on the case, on the version the customer read: a change meanwhile reloads it. */
async function act(action, body, button) {
  button.disabled = true;
  const result = button.closest("form")?.querySelector(".result");
  try {
    await api("POST", `/v1/cases/${encodeURIComponent(current.id)}/${action}`, { body: body || undefined, headers: { "If-Match": `"${current.version}"` } });
    await showCase(current.id, t("done"));
  } catch (error) {
    if (error instanceof SignedOut) return;
    if (error.status === 412 || error.status === 409) return showCase(current.id, t("stale")).catch(failed);
    button.disabled = false;
    if (result) result.textContent = error.message;
    else failed(error);
  }
}

async function renderCasePhotos(c) {
  for (const url of caseBlobs.splice(0)) URL.revokeObjectURL(url);
  $("#case-photos-block").hidden = !c.photos.length;
  const items = await Promise.all(c.photos.map(async (photo, index) => {
    const item = el("li");
    try {
      const response = await fetch(photo.thumbnail_url, { headers: { Authorization: `Bearer ${token()}` } });
      if (!response.ok) return item;
      const url = URL.createObjectURL(await response.blob());
      caseBlobs.push(url);
      item.append(el("img", null, { src: url, alt: t("photo_alt", { n: index + 1 }) }));
    } catch {
      // the photo stays listed without its picture; the case itself is on screen
    }
    return item;
  }));
  if (current === c) $("#case-photos").replaceChildren(...items);
}

// ---------------------------------------------------------------- start

async function changeLanguage(event) {
  await loadLanguage(event.target.value);
  if (order && !$("#order").hidden) renderOrder();
  if (!$("#quote").hidden) showQuote();
  if (current && !$("#case").hidden) renderCase();
  if (!$("#order").hidden) showOrder().catch(failed);
}

async function start() {
  takeFragment();
  await loadLanguage(firstLanguage());
  $("#language").addEventListener("change", changeLanguage);
  $("#lookup-form").addEventListener("submit", lookup);
  $("#draft").addEventListener("submit", toQuote);
  $("#draft").addEventListener("change", (event) => { if (event.target.name === "type") updateDraftForm(); });
  $("#photo-input").addEventListener("change", addPhotos);
  $("#change").addEventListener("click", () => history.back());
  $("#submit").addEventListener("click", submit);
  window.addEventListener("hashchange", () => { takeFragment(); route(); });
  await route();
}

start();

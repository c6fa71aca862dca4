"use strict";
// The Reports page: charts drawn as plain SVG from the finance report endpoints. Everything that
// comes from the API is set with textContent or as an attribute, never parsed as HTML. It shares
// the agent console's sessionStorage ("key", "language"); the endpoints' role guards decide who
// may read (finance, admin). Days are UTC days, as the endpoints group them.

const $ = (selector, root = document) => root.querySelector(selector);
const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 260;
const PAD = { top: 12, right: 12, bottom: 36, left: 52 };
const DAY = 86400000;
const MERCHANT_COLOURS = ["#b3261e", "#d9622b", "#e39b2d", "#8c4a8c", "#c2185b", "#6d4c41"];
const CUSTOMER_COLOURS = ["#1f5fa8", "#2e8b57", "#00838f", "#5c6bc0", "#607d8b"];

let messages = {};
let language = "en";
let shown = null; // {period, daily, reasons}: what the API answered for the chosen period
let WIDTH = 640; // the charts' width in pixels, so their text stays legible on a phone (render())

const t = (key) => messages[key] ?? key;
const locale = () => (language === "zh" ? "zh-CN" : "en");

// ------------------------------------------------------------------ formats

/** The currency's minor-unit digits (2 for EUR, 0 for JPY), as Intl knows them. */
function digits(currency) {
  return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
}

/** Minor units as an exact decimal string in major units ("1999" EUR → "19.99"). */
function major(minor, currency) {
  const places = digits(currency);
  if (!places) return String(minor);
  const text = String(Math.abs(minor)).padStart(places + 1, "0");
  return `${minor < 0 ? "-" : ""}${text.slice(0, -places)}.${text.slice(-places)}`;
}

const money = (minor, currency) =>
  new Intl.NumberFormat(locale(), { style: "currency", currency }).format(major(minor, currency));
const count = (n) => new Intl.NumberFormat(locale()).format(n);
const percent = (share) => new Intl.NumberFormat(locale(), { style: "percent", maximumFractionDigits: 1 }).format(share);
const rating = (value) => new Intl.NumberFormat(locale(), { maximumFractionDigits: 2 }).format(value);
const utc = (day) => new Date(`${day}T00:00:00Z`);
const date = (day) => new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeZone: "UTC" }).format(utc(day));
const shortDate = (day) =>
  new Intl.DateTimeFormat(locale(), { month: "numeric", day: "numeric", timeZone: "UTC" }).format(utc(day));
const isoDay = (moment) => moment.toISOString().slice(0, 10);
const reasonName = (code) => t(`reason.${code}`);

// ------------------------------------------------------------------ page state

async function loadLanguage(wanted) {
  language = wanted === "zh" ? "zh" : "en";
  const response = await fetch(`/console/i18n/reports-${language}.json`);
  messages = await response.json();
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  $("#language").setAttribute("aria-label", t("language"));
  document.documentElement.lang = locale();
  document.title = t("title");
  sessionStorage.setItem("language", language);
  if (shown) render();
}

function view(name) {
  $("#sign-in").hidden = name !== "sign-in";
  $("#reports").hidden = name !== "reports";
  $("#sign-out").hidden = name !== "reports";
}

function notice(text, error = false) {
  const box = $("#notice");
  box.textContent = text;
  box.className = error ? "error" : "";
  box.hidden = !text;
}

class Refused extends Error {}

async function api(path, params) {
  const response = await fetch(`${path}?${new URLSearchParams(params)}`, {
    headers: { Authorization: `Bearer ${sessionStorage.getItem("key")}`, Accept: "application/json" },
  });
  if (response.status === 401) {
    sessionStorage.removeItem("key");
    throw new Refused(t("unauthorized"));
  }
  if (response.status === 403) throw new Refused(t("forbidden"));
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    throw new Error(`${t("failed")} ${problem.detail || response.status}`);
  }
  return response.json();
}

/** The period the picker names: whole UTC days, "to" inclusive (sent as the next midnight). */
function period() {
  const form = $("#period");
  const preset = form.elements.preset.value;
  if (preset !== "custom") {
    const today = utc(isoDay(new Date()));
    form.elements.to.value = isoDay(today);
    form.elements.from.value = isoDay(new Date(today - (Number(preset) - 1) * DAY));
  }
  const from = utc(form.elements.from.value);
  const to = new Date(utc(form.elements.to.value).getTime() + DAY);
  return { from: from.toISOString(), to: to.toISOString(), first: isoDay(from), last: form.elements.to.value };
}

let asked = 0; // the latest load(): an older answer arriving late is dropped

async function load() {
  const ticket = ++asked;
  const chosen = period();
  if (!(chosen.from < chosen.to)) {
    notice(t("bad_period"), true);
    return;
  }
  const params = { from: chosen.from, to: chosen.to };
  $("#reports").setAttribute("aria-busy", "true");
  $("#period-shown").textContent = t("loading");
  try {
    const [daily, reasons] = await Promise.all([
      api("/finance/v1/reports/summary", { ...params, group_by: "day" }),
      api("/finance/v1/reports/reasons", { ...params, by_day: "true" }),
    ]);
    if (ticket !== asked) return;
    shown = { period: chosen, daily, reasons };
    notice("");
    view("reports");
    render();
  } catch (error) {
    if (ticket !== asked) return;
    if (error instanceof Refused) view("sign-in");
    notice(error.message, true);
    if (shown) render(); // says again which period the charts still show
    else $("#period-shown").textContent = "";
  } finally {
    $("#reports").removeAttribute("aria-busy");
  }
}

// ------------------------------------------------------------------ drawing

function svgNode(name, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

function node(name, attributes = {}, text = null) {
  const made = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) made.setAttribute(key, String(value));
  if (text !== null) made.textContent = text;
  return made;
}

function canvas(label) {
  const svg = svgNode("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": label });
  svg.append(svgNode("title", {}, label));
  return svg;
}

/** A value axis from 0 (or ``low``) to ``high``, with a gridline and a label at each tick. */
function axis(svg, low, high, format) {
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  for (let i = 0; i <= 4; i++) {
    const value = low + ((high - low) * i) / 4;
    const y = PAD.top + plotHeight - (plotHeight * i) / 4;
    svg.append(svgNode("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: "grid" }));
    svg.append(svgNode("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end", class: "tick" }, format(value)));
  }
  return (value) => PAD.top + plotHeight - (plotHeight * (value - low)) / (high - low || 1);
}

/** The period's days along the plot, each its own slot, so days without data are gaps and a
 * trend is not squeezed together; a label under about six of them. */
function timeAxis(svg) {
  const first = utc(shown.period.first).getTime();
  const days = Math.round((utc(shown.period.last).getTime() - first) / DAY) + 1;
  const slot = (WIDTH - PAD.left - PAD.right) / days;
  const xOf = (day) => PAD.left + slot * Math.round((utc(day).getTime() - first) / DAY) + slot / 2;
  const step = Math.ceil(days / 6);
  for (let i = 0; i < days; i += step) {
    const day = isoDay(new Date(first + i * DAY));
    svg.append(svgNode("text", { x: xOf(day), y: HEIGHT - PAD.bottom + 16, "text-anchor": "middle", class: "tick" }, shortDate(day)));
  }
  return { xOf, slot };
}

/** A round top for an axis of four whole steps (1, 2 or 5 × 10ⁿ) over ``value``. */
function roundUp(value) {
  const rough = Math.max(value / 4, 1);
  const power = 10 ** Math.floor(Math.log10(rough));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= rough) * 4;
}

/** Vertical bars, one per entry, stacked from ``segments`` ({value, colour, title}), on an axis
 * up to ``high`` (default: a round number over the tallest bar). */
function bars(label, entries, format, high = null) {
  const svg = canvas(label);
  const tallest = Math.max(...entries.map((e) => e.segments.reduce((sum, s) => sum + s.value, 0)), 0);
  const yOf = axis(svg, 0, high ?? roundUp(tallest), format);
  const { xOf, slot } = timeAxis(svg);
  const width = Math.max(Math.min(slot * 0.7, 56), 1);
  for (const entry of entries) {
    let base = 0;
    for (const segment of entry.segments) {
      const rect = svgNode("rect", {
        x: xOf(entry.day) - width / 2, width,
        y: yOf(base + segment.value), height: Math.max(yOf(base) - yOf(base + segment.value), 0),
        fill: segment.colour, class: "mark",
      });
      rect.append(svgNode("title", {}, segment.title));
      svg.append(rect);
      base += segment.value;
    }
  }
  return svg;
}

/** Horizontal bars with their label and value, largest first. */
function rankedBars(label, entries, format) {
  const row = 24;
  const svg = svgNode("svg", { viewBox: `0 0 ${WIDTH} ${entries.length * row + 8}`, role: "img", "aria-label": label });
  svg.append(svgNode("title", {}, label));
  const high = Math.max(...entries.map((e) => e.value), 1);
  const left = Math.min(150, WIDTH / 3);
  const span = WIDTH - left - 70;
  entries.forEach((entry, i) => {
    const y = 4 + i * row;
    svg.append(svgNode("text", { x: left - 8, y: y + 15, "text-anchor": "end", class: "tick" }, entry.label));
    const rect = svgNode("rect", { x: left, y, width: (span * entry.value) / high, height: row - 6, fill: "#1f5fa8", class: "mark" });
    rect.append(svgNode("title", {}, `${entry.label}: ${format(entry.value)}`));
    svg.append(rect, svgNode("text", { x: left + (span * entry.value) / high + 6, y: y + 15, class: "tick" }, format(entry.value)));
  });
  return svg;
}

/** A line through one point per day that has a value; days without are skipped, not drawn as zero. */
function line(label, points, low, high, format) {
  const svg = canvas(label);
  const yOf = axis(svg, low, high, format);
  const { xOf } = timeAxis(svg);
  svg.append(svgNode("polyline", { points: points.map((p) => `${xOf(p.day)},${yOf(p.value)}`).join(" "), class: "trend" }));
  for (const point of points) {
    const dot = svgNode("circle", { cx: xOf(point.day), cy: yOf(point.value), r: 5, class: "mark" });
    dot.append(svgNode("title", {}, `${date(point.day)}: ${format(point.value)}`));
    svg.append(dot);
  }
  return svg;
}

// ------------------------------------------------------------------ tables and CSV

/** ``columns``: [{label, value(row) → the CSV's cell, text(row) → what the table shows, numeric}]. */
function table(caption, columns, rows) {
  const made = node("table");
  made.append(node("caption", {}, caption));
  const head = node("tr");
  for (const column of columns) head.append(node("th", { scope: "col" }, column.label));
  made.appendChild(node("thead")).append(head);
  const body = made.appendChild(node("tbody"));
  for (const row of rows) {
    const tr = body.appendChild(node("tr"));
    for (const column of columns) {
      const value = column.value(row);
      const cell = node("td", { "data-value": value }, column.text ? column.text(row) : value);
      if (column.numeric) cell.className = "num";
      tr.append(cell);
    }
  }
  return made;
}

/** RFC 4180 cells; text a spreadsheet would run as a formula gets a leading quote, as the
 * ledger's CSV does. A byte-order mark makes spreadsheets read the file as UTF-8 (Chinese labels). */
function csv(columns, rows) {
  const cell = (value) => {
    let text = String(value);
    if (/^[=+\-@\t\r]/.test(text) && Number.isNaN(Number(text))) text = `'${text}`;
    return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const lines = [columns.map((c) => cell(c.label)), ...rows.map((row) => columns.map((c) => cell(c.value(row))))];
  return `\ufeff${lines.map((l) => l.join(",")).join("\r\n")}\r\n`;
}

function download(name, columns, rows) {
  const url = URL.createObjectURL(new Blob([csv(columns, rows)], { type: "text/csv;charset=utf-8" }));
  const link = node("a", { href: url, download: `${name}_${shown.period.first}_${shown.period.last}.csv` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** One chart: its SVG (or a line saying there is nothing), its table behind a disclosure, and a
 * CSV of the table's rows. */
function panel(container, name, title, columns, rows, draw) {
  const figure = node("figure", { class: "panel", "data-panel": name });
  const heading = container.closest(".chart").querySelector("h3").textContent;
  if (title !== heading) figure.append(node("figcaption", {}, title)); // the currency, the SKU
  figure.append(rows.length ? draw() : node("p", { class: "muted empty" }, t("no_data")));
  const details = node("details");
  details.append(node("summary", {}, t("table")));
  details.appendChild(node("div", { class: "table-wrap" })).append(table(title, columns, rows));
  const button = node("button", { type: "button", class: "csv", "aria-label": `${t("download_csv")}: ${title}` }, t("download_csv"));
  button.addEventListener("click", () => download(name, columns, rows));
  figure.append(details, button);
  container.append(figure);
}

// ------------------------------------------------------------------ the five charts

const dayColumn = () => ({ label: t("day"), value: (r) => r.day, text: (r) => date(r.day) });

function reasonColours() {
  const colours = {};
  const merchant = [];
  const customer = [];
  for (const day of shown.reasons.by_day) {
    for (const r of day.reasons) {
      const list = r.responsibility === "merchant" ? merchant : customer;
      if (!list.includes(r.reason)) list.push(r.reason);
    }
  }
  merchant.sort().forEach((reason, i) => (colours[reason] = MERCHANT_COLOURS[i % MERCHANT_COLOURS.length]));
  customer.sort().forEach((reason, i) => (colours[reason] = CUSTOMER_COLOURS[i % CUSTOMER_COLOURS.length]));
  return colours;
}

function reasonsChart(container) {
  const select = $("#reasons-sku");
  const skus = shown.reasons.by_sku.map((s) => s.sku);
  const chosen = skus.includes(select.value) ? select.value : "";
  select.replaceChildren(node("option", { value: "" }, t("all_skus")), ...skus.map((sku) => node("option", { value: sku }, sku)));
  select.value = chosen;
  const rows = [];
  for (const day of shown.reasons.by_day) {
    const totals = new Map();
    for (const r of day.reasons) {
      if (chosen && r.sku !== chosen) continue;
      const row = totals.get(r.reason) ?? { day: day.day, reason: r.reason, responsibility: r.responsibility, items: 0 };
      row.items += r.items;
      totals.set(r.reason, row);
    }
    rows.push(...[...totals.values()].sort((a, b) => b.items - a.items || a.reason.localeCompare(b.reason)));
  }
  const colours = reasonColours();
  const columns = [
    dayColumn(),
    { label: t("reason"), value: (r) => r.reason, text: (r) => reasonName(r.reason) },
    { label: t("responsibility"), value: (r) => r.responsibility, text: (r) => t(`responsibility.${r.responsibility}`) },
    { label: t("items"), value: (r) => r.items, text: (r) => count(r.items), numeric: true },
  ];
  const title = chosen ? `${t("chart_reasons")} · ${chosen}` : t("chart_reasons");
  panel(container, "reasons", title, columns, rows, () => {
    const days = [...new Set(rows.map((r) => r.day))];
    const entries = days.map((day) => ({
      day,
      segments: rows.filter((r) => r.day === day).map((r) => ({
        value: r.items, colour: colours[r.reason], title: `${date(day)} · ${reasonName(r.reason)}: ${count(r.items)}`,
      })),
    }));
    const wrap = node("div");
    wrap.append(bars(title, entries, count));
    const legend = wrap.appendChild(node("ul", { class: "legend" }));
    for (const reason of [...new Set(rows.map((r) => r.reason))].sort()) {
      const swatch = node("span", { class: "swatch" });
      swatch.style.background = colours[reason]; // CSSOM, which the style-src policy allows
      legend.appendChild(node("li")).append(swatch, reasonName(reason));
    }
    return wrap;
  });
}

function refundsChart(container) {
  const currencies = [...new Set(shown.daily.rows.map((r) => r.currency))].sort();
  for (const currency of currencies) {
    const rows = shown.daily.rows.filter((r) => r.currency === currency).map((r) => ({ ...r, day: r.key }));
    const columns = [
      dayColumn(),
      { label: t("refunds"), value: (r) => r.refunds, text: (r) => count(r.refunds), numeric: true },
      { label: t("succeeded"), value: (r) => r.succeeded, text: (r) => count(r.succeeded), numeric: true },
      { label: `${t("refunded")} (${currency})`, value: (r) => major(r.refunded, currency), text: (r) => money(r.refunded, currency), numeric: true },
      { label: `${t("in_flight")} (${currency})`, value: (r) => major(r.in_flight, currency), text: (r) => money(r.in_flight, currency), numeric: true },
    ];
    const title = `${t("chart_refunds")} · ${currency}`;
    panel(container, `refunds-${currency}`, title, columns, rows, () =>
      bars(title, rows.map((r) => ({
        day: r.day,
        segments: [{ value: r.refunded, colour: "#1f5fa8", title: `${date(r.day)}: ${money(r.refunded, currency)}` }],
      })), (v) => money(v, currency)),
    );
  }
  if (!currencies.length) panel(container, "refunds", t("chart_refunds"), [dayColumn()], [], null);
}

/** The reasons report's SKUs (items asked back on cases opened in the period, whatever the
 * outcome): what comes back, not only what was refunded. */
function productsChart(container) {
  const rows = shown.reasons.by_sku.slice(0, 10);
  const columns = [
    { label: t("sku"), value: (r) => r.sku },
    { label: t("items"), value: (r) => r.items, text: (r) => count(r.items), numeric: true },
    { label: t("merchant_share"), value: (r) => r.merchant_responsible_share, text: (r) => percent(r.merchant_responsible_share), numeric: true },
  ];
  panel(container, "products", t("chart_products"), columns, rows, () =>
    rankedBars(t("chart_products"), rows.map((r) => ({ label: r.sku, value: r.items })), count),
  );
}

function csatChart(container) {
  const rows = shown.reasons.by_day.filter((d) => d.csat.surveys > 0).map((d) => ({ day: d.day, ...d.csat }));
  const overall = shown.reasons.csat;
  container.append(node("p", { class: "figure" }, overall.surveys
    ? `${t("average_rating")}: ${rating(overall.average_rating)} / 5 · ${t("satisfied")}: ${percent(overall.satisfied_share)} · ${t("surveys")}: ${count(overall.surveys)}`
    : t("no_surveys")));
  const columns = [
    dayColumn(),
    { label: t("surveys"), value: (r) => r.surveys, text: (r) => count(r.surveys), numeric: true },
    { label: t("average_rating"), value: (r) => r.average_rating, text: (r) => rating(r.average_rating), numeric: true },
    { label: t("satisfied"), value: (r) => r.satisfied_share, text: (r) => percent(r.satisfied_share), numeric: true },
  ];
  panel(container, "csat", t("chart_csat"), columns, rows, () =>
    line(t("chart_csat"), rows.map((r) => ({ day: r.day, value: r.average_rating })), 1, 5, rating),
  );
}

function merchantChart(container) {
  const report = shown.reasons;
  container.append(node("p", { class: "figure" }, `${t("period_share")}: ${percent(report.merchant_responsible_share)} (${count(report.items)} ${t("items_unit")})`));
  const rows = report.by_day;
  const columns = [
    dayColumn(),
    { label: t("items"), value: (r) => r.items, text: (r) => count(r.items), numeric: true },
    { label: t("merchant_share"), value: (r) => r.merchant_responsible_share, text: (r) => percent(r.merchant_responsible_share), numeric: true },
  ];
  panel(container, "merchant", t("chart_merchant"), columns, rows, () =>
    bars(t("chart_merchant"), rows.map((r) => ({
      day: r.day,
      segments: [{ value: r.merchant_responsible_share, colour: "#b3261e", title: `${date(r.day)}: ${percent(r.merchant_responsible_share)}` }],
    })), percent, 1),
  );
}

function render() {
  WIDTH = Math.max(280, Math.round($("#chart-reasons .plots").clientWidth)) || 640;
  const { first, last } = shown.period;
  $("#period-shown").textContent = `${date(first)} – ${date(last)} (${t("utc")})`;
  const charts = [
    ["#chart-reasons", reasonsChart], ["#chart-refunds", refundsChart], ["#chart-products", productsChart],
    ["#chart-csat", csatChart], ["#chart-merchant", merchantChart],
  ];
  for (const [selector, draw] of charts) {
    const container = $(`${selector} .plots`);
    container.replaceChildren();
    draw(container);
  }
}

// ------------------------------------------------------------------ start

document.addEventListener("DOMContentLoaded", async () => {
  await loadLanguage(sessionStorage.getItem("language") || "en");
  $("#language").value = language;
  $("#language").addEventListener("change", (event) => loadLanguage(event.target.value));
  $("#sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("key", $("#api-key").value.trim());
    $("#api-key").value = "";
    load();
  });
  $("#sign-out").addEventListener("click", () => {
    sessionStorage.removeItem("key");
    shown = null;
    notice("");
    view("sign-in");
  });
  const form = $("#period");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  form.addEventListener("change", (event) => {
    if (event.target.name === "preset" && event.target.value !== "custom") load();
    if (event.target.type === "date") form.elements.preset.value = "custom";
  });
  $("#reasons-sku").addEventListener("change", () => render());
  let drawnFor = window.innerWidth;
  window.addEventListener("resize", () => {
    if (shown && window.innerWidth !== drawnFor) render();
    drawnFor = window.innerWidth;
  });
  if (sessionStorage.getItem("key")) load();
  else view("sign-in");
});

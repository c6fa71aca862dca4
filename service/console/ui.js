// What the agent console and the customer's returns portal share: finding, making and
// translating elements, and money by Intl. A classic script, loaded before each page's own.
"use strict";

const $ = (selector) => document.querySelector(selector);
const locale = () => (document.documentElement.lang === "zh-CN" ? "zh-CN" : "en");

/** The catalogue's text at a dotted key, with {name}s filled in; the key's last part if missing. */
function translate(messages, key, vars = {}) {
  const found = key.split(".").reduce((node, part) => (node && typeof node === "object" ? node[part] : undefined), messages);
  const text = typeof found === "string" ? found : key.split(".").pop();
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

/** An element whose text is set as text (never parsed as HTML). */
function el(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

const digitsOf = (currency) => new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;

/** Minor units as money in the page's language, with the currency's own digits. */
function money(amount, currency) {
  if (amount === null || amount === undefined) return "";
  return new Intl.NumberFormat(locale(), { style: "currency", currency }).format(amount / 10 ** digitsOf(currency));
}

/** Hand a fetched file (a blob: URL) to the browser as a download named ``filename``. */
function offerDownload(url, filename) {
  const link = el("a", null, { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
}

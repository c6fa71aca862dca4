// A storefront (and its agents and finance) written from docs/contract.md against the types
// generated from the served document, with openapi-fetch: strict TypeScript, no casts, no any.
// Every answer is checked against the document at run time (contract.ts). Run by
// tests/e2e/test_typescript_client.py: `node build/walk.js`, with the service's base URL and a
// merchant's keys in RETURNS_BASE_URL and RETURNS_<ROLE>_KEY. Prints what it checked as JSON.
import { randomBytes } from "node:crypto";
import createClient from "openapi-fetch";
import { Contract, isRecord } from "./contract.js";
import type { components, paths } from "./generated/api.js";
import { png, pngSize } from "./image.js";

type Schemas = components["schemas"];
type CaseView = Schemas["CaseView"];
type Client = ReturnType<typeof createClient<paths>>;

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(`expected: ${what}`);
}

function present<T>(value: T | null | undefined, what: string): T {
  if (value === null || value === undefined) throw new Error(`missing: ${what}`);
  return value;
}

/** The answer of a call that must succeed with `status`. */
async function ok<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>, status = 200): Promise<T> {
  const { data, error, response } = await call;
  check(response.status === status && data !== undefined, `${response.url} answers ${status}, not ${response.status} ${JSON.stringify(error)}`);
  return data;
}

/** The problem of a call that must be refused with `status`. */
async function refused<E>(call: Promise<{ data?: unknown; error?: E; response: Response }>, status: number): Promise<E> {
  const { error, response } = await call;
  check(response.status === status && error !== undefined, `${response.url} refuses with ${status}, not ${response.status}`);
  check(response.headers.get("content-type") === "application/problem+json", "a problem+json answer");
  return error;
}

/** A case answer with the ETag that names its version: the If-Match of the next step. */
async function withTag(call: Promise<{ data?: CaseView; error?: unknown; response: Response }>, status = 200): Promise<[CaseView, string]> {
  const { data, response } = await call;
  const tag = response.headers.get("ETag");
  check(response.status === status && data !== undefined, `a case, ${status}, not ${response.status}`);
  check(tag === `"${data.version}"`, `the ETag names the case's version ${data.version}: ${tag}`);
  return [data, tag];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(probe: () => Promise<T | undefined>, what: string, seconds = 30): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`not within ${seconds} s: ${what}`);
    await sleep(100);
  }
}

const id = (prefix: string) => `${prefix}_${randomBytes(4).toString("hex")}`;
const daysAgo = (days: number) => new Date(Date.now() - days * 86_400_000).toISOString();
const SHIPMENT = { carrier: "dhl", tracking_number: "JD0001" };

const base = env("RETURNS_BASE_URL");
const contract = await Contract.load(base);

function client(key: string): Client {
  const made = createClient<paths>({ baseUrl: base, headers: { Authorization: `Bearer ${key}` } });
  made.use(contract.middleware());
  return made;
}

const storefront = client(env("RETURNS_STOREFRONT_KEY"));
const agent = client(env("RETURNS_AGENT_KEY"));
const finance = client(env("RETURNS_FINANCE_KEY"));
const admin = client(env("RETURNS_ADMIN_KEY"));

/** An order as docs/contract.md shows it. */
function orderBody(changes: Partial<Schemas["OrderIn"]> = {}): Schemas["OrderIn"] {
  return {
    currency: "EUR",
    placed_at: daysAgo(10),
    delivered_at: daysAgo(7),
    customer: { id: id("cus"), email: "a@example.com" },
    lines: [
      { line_id: "l1", sku: "TSHIRT-M", title: "T-shirt", quantity: 2, unit_price: 1999, category: "apparel", final_sale: false },
      { line_id: "l2", sku: "MUG", title: "Mug", quantity: 1, unit_price: 1500 },
    ],
    shipping_total: 495,
    payment: { gateway: "stripe", reference: "pi_123", captured_amount: 5993 },
    ...changes,
  };
}

/** An order put twice: 201 when new, 200 when the same again. */
async function putOrder(changes: Partial<Schemas["OrderIn"]> = {}): Promise<Schemas["OrderView"]> {
  const orderId = id("o");
  const body = orderBody(changes);
  const put = () => storefront.PUT("/v1/orders/{order_id}", { params: { path: { order_id: orderId } }, body });
  const created = await ok(put(), 201);
  const again = await ok(put(), 200);
  check(created.refundable_amount === again.refundable_amount, "the same order twice is the same order");
  return created;
}

/** The agent receives the one item of line l1 in `condition`. */
async function receive(caseId: string, condition: Schemas["Condition"]): Promise<CaseView> {
  const body = { items: [{ line_id: "l1", quantity: 1, condition }] };
  return ok(agent.POST("/admin/v1/cases/{case_id}/receive", { params: { path: { case_id: caseId } }, body }));
}

async function settings(): Promise<void> {
  // a merchant that ships its returns itself: every field but one left to its default
  const saved = await ok(admin.PUT("/admin/v1/shipping-settings", { body: { label_buyer: "customer_ships" } }));
  check(saved.default_parcel.weight_g === 1000 && saved.carrier_preferences.prefer === "cheapest", "the defaults, answered");
  const read = await ok(agent.GET("/admin/v1/shipping-settings"));
  check(read.label_buyer === "customer_ships" && read.return_address === null, "the settings read back");
}

async function returnRefunded(): Promise<string> {
  const order = await putOrder();
  const read = await ok(storefront.GET("/v1/orders/{order_id}", { params: { path: { order_id: order.order_id } } }));
  check(read.lines.every((line) => line.returnable_quantity === line.quantity), "nothing claimed yet");
  const draft: Schemas["CaseIn"] = {
    order_id: order.order_id,
    type: "return",
    resolution: "refund",
    items: [{ line_id: "l1", quantity: 1, reason: "other", note: "the seam came apart" }],
  };
  const quote = await ok(storefront.POST("/v1/cases/preview", { body: draft }));
  const shipping = quote.money.return_shipping;
  check(quote.decision.requires_review && shipping.payer === "undecided", "an `other` reason waits for an agent");
  const undecided = shipping.undecided_share ?? 0;
  check(undecided > 0, "the label the customer may be charged is said");

  const [opened] = await withTag(
    storefront.POST("/v1/cases", { params: { header: { "Idempotency-Key": id("idem") } }, body: draft }),
    201,
  );
  check(opened.state === "pending_review" && opened.money.refund_total === quote.money.refund_total, "opened as quoted");

  const picture = png(96, 64);
  const photo = await ok(
    storefront.POST("/v1/cases/{case_id}/photos", {
      params: { path: { case_id: opened.id } },
      body: { file: new Blob([picture], { type: "image/png" }) },
      bodySerializer: (body) => {
        const form = new FormData();
        form.append("file", body.file, "seam.png");
        return form;
      },
    }),
    201,
  );
  check(photo.content_type === "image/png" && photo.width === 96 && photo.height === 64, "the photo as uploaded");
  const { data: image, response } = await storefront.GET("/v1/cases/{case_id}/photos/{photo_id}", {
    params: { path: { case_id: opened.id, photo_id: photo.id } },
    parseAs: "arrayBuffer",
  });
  check(response.headers.get("content-type") === "image/png", "served as PNG");
  const size = pngSize(Buffer.from(present(image, "the photo's bytes")));
  check(size[0] === 96 && size[1] === 64, `the photo's size: ${size.join("×")}`);

  const path = { case_id: opened.id };
  const [seen, stale] = await withTag(agent.GET("/admin/v1/cases/{case_id}", { params: { path } }));
  const [, current] = await withTag(
    agent.POST("/admin/v1/cases/{case_id}/notes", { params: { path, header: { "If-Match": stale } }, body: { text: "photo checked" } }),
  );
  const approval: Schemas["ApproveIn"] = { responsibility: [{ line_id: "l1", responsibility: "merchant" }] };
  const conflict = await refused(
    agent.POST("/admin/v1/cases/{case_id}/approve", { params: { path, header: { "If-Match": stale } }, body: approval }),
    412,
  );
  check(conflict.code === "version_conflict", `412 version_conflict, not ${conflict.code}`);
  const [approved, tag] = await withTag(
    agent.POST("/admin/v1/cases/{case_id}/approve", { params: { path, header: { "If-Match": current } }, body: approval }),
  );
  check(approved.state === "approved" && approved.version > seen.version, "approved");
  check(approved.money.return_shipping.payer === "merchant" && approved.money.return_shipping.undecided_share === undefined,
    "the merchant's label: nothing undecided is left in the answer");

  const [shipped] = await withTag(
    storefront.POST("/v1/cases/{case_id}/return-shipment", { params: { path, header: { "If-Match": tag } }, body: SHIPMENT }),
  );
  check(shipped.state === "in_transit", "shipped");
  const received = await receive(opened.id, "defective");
  const refund = present(received.refunds[0], "a refund");
  check(received.state === "refund_pending" && refund.status === "pending" && refund.amount === received.money.refund_total, "refund started");

  const settled = await until(async () => {
    const now = await ok(storefront.GET("/v1/cases/{case_id}", { params: { path } }));
    return now.refunds.every((made) => made.status === "succeeded") ? now : undefined;
  }, "the refund succeeds at the simulated gateway");
  check(settled.timeline.some((step) => step.event === "refund_succeeded"), "the customer's timeline says so");

  const events = await ok(agent.GET("/admin/v1/cases/{case_id}/events", { params: { path } }));
  const approve = present(events.items.find((event) => event.type === "approve"), "the approval's event");
  check(Array.isArray(approve.data["responsibility"]), "the approval's event says who was responsible");
  return refund.id;
}

async function financeReads(refundId: string): Promise<void> {
  const ledger = await ok(finance.GET("/finance/v1/refunds", { params: { query: { status: "succeeded" } } }));
  check(ledger.items.some((item) => item.id === refundId && item.status === "succeeded"), "the refund in the ledger");
  const csv = await ok(finance.GET("/finance/v1/refunds.csv", { parseAs: "text" }));
  const [header, ...rows] = csv.trim().split(/\r?\n/);
  check(present(header, "a header row").split(",").includes("status"), "the CSV's header names its columns");
  check(rows.some((row) => row.includes(refundId)), "the refund in the CSV");
  const summary = await ok(finance.GET("/finance/v1/reports/summary", { params: { query: { group_by: "currency" } } }));
  check(summary.rows.some((row) => row.currency === "EUR" && row.refunded > 0), "refunded EUR in the summary");
  const period = { from: daysAgo(1), to: new Date(Date.now() + 60_000).toISOString() };
  const report = await ok(finance.POST("/finance/v1/reconciliations", { body: period }), 201);
  check(report.matched.some((entry) => entry.refund_id === refundId), "the refund matched at the gateway");
  const again = await ok(finance.GET("/finance/v1/reconciliations/{reconciliation_id}", { params: { path: { reconciliation_id: report.id } } }));
  check(again.id === report.id && Object.keys(again.totals).includes("EUR"), "the report read back");
}

async function exchange(): Promise<void> {
  const order = await putOrder();
  const opened = await ok(storefront.POST("/v1/cases", {
    body: { order_id: order.order_id, type: "exchange", items: [{ line_id: "l1", quantity: 1, reason: "wrong_size", replacement_sku: "TSHIRT-L" }] },
  }), 201);
  check(opened.state === "approved", "an exchange within the rules is approved at once");
  await receive(opened.id, "as_new");
  const path = { case_id: opened.id };
  const shipped = await ok(agent.POST("/admin/v1/cases/{case_id}/ship-replacement", { params: { path }, body: SHIPMENT }));
  check(shipped.state === "replacement_shipped", "the replacement shipped");
  const closed = await ok(agent.POST("/admin/v1/cases/{case_id}/close", { params: { path }, body: {} }));
  check(closed.state === "closed", "closed");
}

async function repair(): Promise<void> {
  const delivered = daysAgo(400); // out of warranty: a paid repair
  const order = await putOrder({ placed_at: daysAgo(402), delivered_at: delivered });
  const opened = await ok(storefront.POST("/v1/cases", {
    body: { order_id: order.order_id, type: "repair", issue_description: "zip broken", items: [{ line_id: "l1", quantity: 1, reason: "defective" }] },
  }), 201);
  const path = { case_id: opened.id };
  await ok(agent.POST("/admin/v1/cases/{case_id}/approve", {
    params: { path }, body: { overrides: [{ rule: "photo_evidence", reason: "seen at the counter" }] },
  }));
  await receive(opened.id, "defective");
  const diagnosed = await ok(agent.POST("/admin/v1/cases/{case_id}/repair/diagnose", {
    params: { path }, body: { finding: "zip teeth", in_warranty: false, quote_amount: 4500 },
  }));
  check(diagnosed.state === "quote_pending" && present(diagnosed.diagnosis, "a diagnosis").quote_amount === 4500, "quoted");
  const accepted = await ok(storefront.POST("/v1/cases/{case_id}/quote/accept", { params: { path } }));
  check(accepted.money.difference_due === 4500, "the customer pays the quote");
  await ok(agent.POST("/admin/v1/cases/{case_id}/repair/complete", { params: { path }, body: { note: "new zip" } }));
  const back = await ok(agent.POST("/admin/v1/cases/{case_id}/ship-back", { params: { path }, body: SHIPMENT }));
  check(back.state === "shipped_back", "shipped back");
}

async function portal(): Promise<void> {
  const order = await putOrder();
  const link = await ok(storefront.POST("/v1/portal-links", {
    body: { order_id: order.order_id, customer_id: order.customer.id },
  }), 201);
  check(link.url.endsWith(`/portal#t=${link.token}`) && Date.parse(link.expires_at) > Date.now(), "a link to the portal");
  const customer = client(link.token);
  const read = await ok(customer.GET("/v1/orders/{order_id}", { params: { path: { order_id: order.order_id } } }));
  check(read.customer.email === "a@example.com" && read.customer.language === null, "the customer reads their order");
  const cases = await ok(customer.GET("/v1/cases", { params: { query: { order_id: order.order_id } } }));
  check(cases.items.length === 0 && cases.next_cursor === null, "no cases yet");
  const forbidden = await refused(customer.PUT("/v1/orders/{order_id}", {
    params: { path: { order_id: order.order_id } },
    body: orderBody(),
  }), 403);
  check(forbidden.code === "forbidden", "a customer may not change the order");
}

async function badInput(): Promise<void> {
  const wrong = await refused(storefront.PUT("/v1/orders/{order_id}", {
    params: { path: { order_id: id("o") } },
    body: orderBody({ lines: [{ line_id: "l1", sku: "MUG", title: "Mug", quantity: 0, unit_price: 1500 }] }),
  }), 422);
  const error = present(wrong.errors?.[0], "the bad field");
  check(wrong.code === "validation_error" && error.field === "lines[0].quantity" && error.in === "body", `named: ${JSON.stringify(wrong.errors)}`);
}

async function policy(): Promise<void> {
  const before = await ok(admin.GET("/admin/v1/policy"));
  const rules = before.document["rules"];
  check(isRecord(rules), "a policy has rules");
  const installed = await ok(admin.PUT("/admin/v1/policy", { body: { ...before.document, rules: { ...rules, return_window: { days: 45 } } } }));
  const after = await ok(admin.GET("/admin/v1/policy"));
  const window = isRecord(after.document["rules"]) ? after.document["rules"]["return_window"] : undefined;
  check(after.version === installed.version && !after.is_default && isRecord(window) && window["days"] === 45, "the policy read back");
}

await settings();
const refundId = await returnRefunded();
await financeReads(refundId);
await exchange();
await repair();
await portal();
await badInput();
await policy(); // last: it changes the merchant's rules
console.log(JSON.stringify({ checked: Object.fromEntries(contract.checked) }));

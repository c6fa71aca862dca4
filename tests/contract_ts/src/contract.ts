// The served OpenAPI document as a run-time check of every answer the client gets: a JSON
// answer must be valid against the schema its operation declares for its status (else for
// `default`), by ajv in strict mode with every format of ajv-formats; any answer must be of a
// media type declared there and carry the headers declared required. Loading it compiles every
// component schema (strict) and every `pattern` as ECMA-262 with the `u` flag, as clients do.
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import type { Middleware } from "openapi-fetch";

const DOCUMENT = "https://returns.invalid/openapi.json";

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The object at `keys` within `value`; fails naming the path when there is none. */
function objectAt(value: unknown, ...keys: string[]): Record<string, unknown> {
  let found = value;
  for (const key of keys) {
    found = isRecord(found) ? found[key] : undefined;
  }
  if (!isRecord(found)) throw new Error(`the document has no object at ${keys.join(" / ")}`);
  return found;
}

/** Where `keys` are within the document, as a URI ajv resolves (a JSON pointer fragment). */
function pointer(keys: string[]): string {
  return `${DOCUMENT}#${keys.map((key) => "/" + encodeURIComponent(key.replaceAll("~", "~0").replaceAll("/", "~1"))).join("")}`;
}

/** Every `pattern` keyword's value within `value`. */
function patterns(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(patterns);
  if (!isRecord(value)) return [];
  const own = typeof value["pattern"] === "string" ? [value["pattern"]] : [];
  return [...own, ...Object.values(value).flatMap(patterns)];
}

export class Contract {
  /** How many answers were checked, by `<operationId> <status>`. */
  readonly checked = new Map<string, number>();

  private constructor(
    private readonly document: Record<string, unknown>,
    private readonly ajv: Ajv2020,
  ) {}

  static async load(baseUrl: string): Promise<Contract> {
    const response = await fetch(new URL("/schema/openapi.json", baseUrl));
    const document: unknown = await response.json();
    if (!response.ok || !isRecord(document)) throw new Error(`no OpenAPI document at ${baseUrl}: ${response.status}`);
    const ajv = new Ajv2020({ strict: true, allErrors: true });
    addFormats.default(ajv);
    // The document is no JSON Schema: its schemas are reached by pointer from a root that holds
    // only the two members they are in, which ajv keeps as annotations (never compiled as schemas).
    ajv.addVocabulary(["components", "paths"]);
    ajv.addSchema({ components: document["components"], paths: document["paths"] }, DOCUMENT);
    for (const name of Object.keys(objectAt(document, "components", "schemas"))) {
      if (ajv.getSchema(pointer(["components", "schemas", name])) === undefined) throw new Error(`no schema ${name}`);
    }
    for (const pattern of patterns(document)) new RegExp(pattern, "u");
    return new Contract(document, ajv);
  }

  /** Checks each answer before the client reads it; a mismatch fails the call. */
  middleware(): Middleware {
    return { onResponse: async ({ request, response, schemaPath }) => this.check(request.method, schemaPath, response) };
  }

  private async check(method: string, path: string, response: Response): Promise<undefined> {
    const verb = method.toLowerCase();
    const operation = objectAt(this.document, "paths", path, verb);
    const id = `${String(operation["operationId"])} ${response.status}`;
    const responses = objectAt(operation, "responses");
    const status = String(response.status) in responses ? String(response.status) : "default";
    const declared = objectAt(responses, status);
    for (const [name, header] of Object.entries(isRecord(declared["headers"]) ? declared["headers"] : {})) {
      if (isRecord(header) && header["required"] === true && !response.headers.has(name)) {
        throw new Error(`${id}: the answer has no ${name} header, which the document says it always has`);
      }
    }
    const media = (response.headers.get("content-type") ?? "").split(";")[0]?.trim() ?? "";
    const content = isRecord(declared["content"]) ? declared["content"] : {};
    if (media === "" && Object.keys(content).length === 0) {
      this.count(id);
      return undefined;
    }
    if (!(media in content)) throw new Error(`${id}: answered ${media}, the document declares ${Object.keys(content).join(", ")}`);
    if (media === "application/json" || media.endsWith("+json")) {
      const validate = this.ajv.getSchema(pointer(["paths", path, verb, "responses", status, "content", media, "schema"]));
      if (validate === undefined) throw new Error(`${id}: no schema for ${media}`);
      const body: unknown = await response.clone().json();
      if (!validate(body)) {
        throw new Error(`${id}: the answer does not match its schema: ${this.ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 3000)}`);
      }
    }
    this.count(id);
    return undefined;
  }

  private count(id: string): void {
    this.checked.set(id, (this.checked.get(id) ?? 0) + 1);
  }
}

// The walk-through holds to what a strict client can: no cast (`x as T`, `<T>x`), no non-null
// assertion (`x!`), no `any`. Run as `node nocasts.mjs`: prints each one found (file:line) and
// fails; the generated types (src/generated) are openapi-typescript's, not checked here.
import { readdirSync, readFileSync } from "node:fs";
import ts from "typescript";

const FORBIDDEN = {
  [ts.SyntaxKind.AsExpression]: "a cast (as)",
  [ts.SyntaxKind.TypeAssertionExpression]: "a cast (<T>)",
  [ts.SyntaxKind.NonNullExpression]: "a non-null assertion (!)",
  [ts.SyntaxKind.AnyKeyword]: "any",
};
const found = [];
for (const name of readdirSync("src").filter((file) => file.endsWith(".ts"))) {
  const source = ts.createSourceFile(name, readFileSync(`src/${name}`, "utf8"), ts.ScriptTarget.Latest, true);
  const visit = (node) => {
    const what = FORBIDDEN[node.kind];
    if (what) {
      found.push(`src/${name}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}: ${what}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
}
if (found.length) {
  console.error(found.join("\n"));
  process.exit(1);
}

// Validates custom resources (ServiceMonitor, PrometheusRule, CloudNativePG Cluster) against
// their CRD schemas, as packaged by @kubernetes-models: each model's validate() checks what
// the CRD's OpenAPI schema says (types, required fields, enums, patterns); the API server
// would silently drop a field the schema does not know, so TypeScript's excess-property
// check over the same models' types refuses those too.
//
// Reads a JSON array of objects on stdin; prints a JSON array with, for each object, its
// list of problems (empty when valid). An object of another kind is a problem.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const MODELS = {
  "monitoring.coreos.com/v1 ServiceMonitor":
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
  "monitoring.coreos.com/v1 PrometheusRule":
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule",
  "postgresql.cnpg.io/v1 Cluster":
    "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1/Cluster",
};
const HERE = dirname(fileURLToPath(import.meta.url));

function read(stream) {
  return new Promise((resolve) => {
    let text = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk) => (text += chunk));
    stream.on("end", () => resolve(text));
  });
}

async function schemaProblems(object, module) {
  const kind = object.kind;
  const Model = (await import(module))[kind];
  try {
    new Model(object).validate();
    return [];
  } catch (error) {
    return [String(error.message)];
  }
}

// One TypeScript file assigns each object literal to its model's interface; every error
// the compiler reports on line i belongs to object i.
function excessPropertyProblems(objects) {
  const lines = [];
  const imports = new Map();
  objects.forEach((object, index) => {
    const module = MODELS[`${object.apiVersion} ${object.kind}`];
    if (!module) {
      lines.push(`// object ${index}: no model`);
      return;
    }
    const alias = `I${object.kind}`;
    imports.set(alias, module);
    lines.push(`export const object${index}: ${alias} = ${JSON.stringify(object)};`);
  });
  const header = [...imports].map(([alias, module]) => `import type { ${alias} } from "${module}";`);
  const folder = mkdtempSync(join(HERE, ".custom-resources-"));
  try {
    const file = join(folder, "objects.ts");
    writeFileSync(file, [...header, ...lines].join("\n") + "\n");
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
    });
    const problems = objects.map(() => []);
    for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
      const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, " ");
      if (!diagnostic.file || diagnostic.file.fileName !== file) {
        problems.forEach((list) => list.push(message));
        continue;
      }
      const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
      problems[line - header.length]?.push(message);
    }
    return problems;
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

const objects = JSON.parse(await read(process.stdin));
const strict = excessPropertyProblems(objects);
const results = [];
for (const [index, object] of objects.entries()) {
  const module = MODELS[`${object.apiVersion} ${object.kind}`];
  if (!module) {
    results.push([`no CRD schema here for ${object.apiVersion} ${object.kind}`]);
    continue;
  }
  results.push([...(await schemaProblems(object, module)), ...strict[index]]);
}
process.stdout.write(JSON.stringify(results) + "\n");

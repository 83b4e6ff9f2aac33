// Parses queries with the grammars Grafana's own query editors use, and reports the
// syntax errors and the names each query refers to.
// stdin:  [{"language": "promql" | "logql" | "traceql", "expr": "..."}, ...]
// stdout: [{"language", "expr", "errors": [{"from", "to", "text"}], ...names}, ...]
//   promql:  "metrics" (selector names), "labels" (matchers, grouping, on/ignoring),
//            "functions"
//   logql:   "stream_labels" (stream selector), "fields" (label filters, grouping,
//            unwrap, and the {{.field}} names of line_format/label_format templates)
//   traceql: "attributes" (scoped attribute names such as resource.service.name)
import { readFileSync } from 'node:fs';
import { parser as logqlParser } from '@grafana/lezer-logql';
import { parser as promqlParser } from '@prometheus-io/lezer-promql';
import { parser as traceqlParser } from '@grafana/lezer-traceql';

const TEMPLATE_FIELD = /{{[^}]*?\.([A-Za-z_][A-Za-z0-9_]*)/g;

function textOf(expr, node) {
  return expr.slice(node.from, node.to);
}

function unquote(literal) {
  return literal.startsWith('`') ? literal.slice(1, -1) : JSON.parse(literal);
}

function collectPromql(expr, node, names) {
  const parent = node.node.parent?.name;
  if (node.name === 'Identifier' && parent === 'VectorSelector') {
    names.metrics.add(textOf(expr, node));
  } else if (node.name === 'LabelName') {
    names.labels.add(textOf(expr, node));
  } else if (node.name === 'FunctionIdentifier') {
    names.functions.add(textOf(expr, node));
  }
}

function collectLogql(expr, node, names) {
  const parent = node.node.parent;
  if (node.name === 'Identifier' && parent?.name === 'Matcher') {
    let ancestor = parent.parent;
    while (ancestor?.name === 'Matchers') ancestor = ancestor.parent;
    const inSelector = ancestor?.name === 'Selector';
    (inSelector ? names.stream_labels : names.fields).add(textOf(expr, node));
  } else if (node.name === 'Identifier' && ['Labels', 'UnwrapExpr'].includes(parent?.name)) {
    names.fields.add(textOf(expr, node));
  } else if (node.name === 'Identifier' && parent?.name?.endsWith('Filter')) {
    names.fields.add(textOf(expr, node));
  } else if (node.name === 'String' && ['LineFormatExpr', 'LabelFormatMatcher'].includes(parent?.name)) {
    for (const [, field] of unquote(textOf(expr, node)).matchAll(TEMPLATE_FIELD)) {
      names.fields.add(field);
    }
  }
}

function collectTraceql(expr, node, names) {
  if (node.name === 'AttributeField') {
    names.attributes.add(textOf(expr, node));
  }
}

const LANGUAGES = {
  promql: { parser: promqlParser, collect: collectPromql, names: ['metrics', 'labels', 'functions'] },
  logql: { parser: logqlParser, collect: collectLogql, names: ['stream_labels', 'fields'] },
  traceql: { parser: traceqlParser, collect: collectTraceql, names: ['attributes'] },
};

function analyse({ language, expr }) {
  const grammar = LANGUAGES[language];
  if (!grammar) throw new Error(`unknown query language: ${language}`);
  const names = Object.fromEntries(grammar.names.map((name) => [name, new Set()]));
  const errors = [];
  grammar.parser.parse(expr).iterate({
    enter(node) {
      if (node.type.isError) {
        errors.push({ from: node.from, to: node.to, text: expr.slice(Math.max(0, node.from - 20), node.to + 20) });
      } else {
        grammar.collect(expr, node, names);
      }
    },
  });
  const listed = Object.fromEntries(Object.entries(names).map(([key, set]) => [key, [...set].sort()]));
  return { language, expr, errors, ...listed };
}

const queries = JSON.parse(readFileSync(0, 'utf8'));
process.stdout.write(`${JSON.stringify(queries.map(analyse), null, 2)}\n`);

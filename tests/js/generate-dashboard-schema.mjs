// Generates the JSON Schema of a Grafana dashboard (v1 JSON model) from the TypeScript
// types that npm @grafana/schema publishes: the dashboard kind, plus each core panel's
// options and custom field config, tied to a panel through its `type`, and the options of
// the core panels it lacks, vendored here from Grafana's source (VENDORED_PANELS).
// Usage: node generate-dashboard-schema.mjs [output.json]   (stdout without an argument)
import { isDeepStrictEqual } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGenerator } from 'ts-json-schema-generator';

const require = createRequire(import.meta.url);
const schemaPackage = dirname(require.resolve('@grafana/schema/package.json'));
const schemaPackageVersion = require('@grafana/schema/package.json').version;
const { defaultDashboard } = require('@grafana/schema');
const rawTypes = join(schemaPackage, 'dist', 'types', 'raw');
const here = dirname(fileURLToPath(import.meta.url));

// The core panel plugins this template's dashboards may use: plugin id -> folder of its
// types under dist/types/raw/composable. A panel of any other type fails validation.
const PANEL_FOLDERS = {
  barchart: 'barchart',
  bargauge: 'bargauge',
  gauge: 'gauge',
  heatmap: 'heatmap',
  histogram: 'histogram',
  logs: 'logs',
  nodeGraph: 'nodegraph',
  piechart: 'piechart',
  stat: 'stat',
  'state-timeline': 'statetimeline',
  'status-history': 'statushistory',
  table: 'table',
  text: 'text',
  timeseries: 'timeseries',
};

// Core panel plugins whose types @grafana/schema does not publish: plugin id -> TypeScript
// file here exporting its `Options`, copied from Grafana's source (named in its header).
const VENDORED_PANELS = {
  alertlist: 'alertlist-options.ts',
};

function panelConfig(pluginId, folder, module, file) {
  const declarations = readFileSync(file, 'utf8');
  return {
    pluginId,
    folder,
    module,
    hasFieldConfig: /^export interface FieldConfig\b/m.test(declarations),
  };
}

function panelConfigs() {
  const core = Object.entries(PANEL_FOLDERS).map(([pluginId, folder]) => {
    const module = join(rawTypes, 'composable', folder, 'panelcfg', 'x', 'types.gen');
    return panelConfig(pluginId, folder, module, `${module}.d.ts`);
  });
  const vendored = Object.entries(VENDORED_PANELS).map(([pluginId, file]) =>
    panelConfig(pluginId, pluginId, join(here, file.replace(/\.ts$/, '')), join(here, file)),
  );
  return [...core, ...vendored];
}

// One TypeScript entry file naming every root type, so one program serves all of them.
function entrySource(panels) {
  const dashboardModule = JSON.stringify(join(rawTypes, 'dashboard', 'x', 'types.gen'));
  const lines = [
    `import type { Dashboard } from ${dashboardModule};`,
    'export type GrafanaDashboard = Dashboard;',
  ];
  for (const { folder, module, hasFieldConfig } of panels) {
    const imported = [`Options as Options_${folder}`];
    if (hasFieldConfig) imported.push(`FieldConfig as FieldConfig_${folder}`);
    lines.push(`import type { ${imported.join(', ')} } from ${JSON.stringify(module)};`);
    lines.push(`export type PanelOptions_${folder} = Options_${folder};`);
    if (hasFieldConfig) lines.push(`export type PanelFieldConfig_${folder} = FieldConfig_${folder};`);
  }
  return `${lines.join('\n')}\n`;
}

function renameRefs(node, renames) {
  if (Array.isArray(node)) return node.map((item) => renameRefs(item, renames));
  if (node === null || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node).map(([key, value]) => {
      if (key === '$ref' && typeof value === 'string') {
        const name = decodeURIComponent(value.replace('#/definitions/', ''));
        return [key, renames.has(name) ? `#/definitions/${renames.get(name)}` : value];
      }
      return [key, renameRefs(value, renames)];
    }),
  );
}

// Roots are generated one at a time, because different plugins give one name to
// different shapes; such a clash gets the plugin folder as suffix.
function mergeDefinitions(merged, definitions, suffix) {
  const renames = new Map();
  for (const [name, definition] of Object.entries(definitions)) {
    if (name in merged && !isDeepStrictEqual(merged[name], definition)) {
      renames.set(name, `${name}_${suffix}`);
    }
  }
  for (const [name, definition] of Object.entries(renameRefs(definitions, renames))) {
    const target = renames.get(name) ?? name;
    if (target in merged && !isDeepStrictEqual(merged[target], definition)) {
      throw new Error(`two different definitions named ${target}`);
    }
    merged[target] = definition;
  }
}

// A panel's `options` and `fieldConfig.defaults.custom` must match its plugin's types.
function linkPanelTypes(definitions, panels) {
  const panel = definitions.Panel;
  panel.properties.type = { ...panel.properties.type, enum: panels.map((p) => p.pluginId) };
  panel.allOf = panels.map(({ pluginId, folder, hasFieldConfig }) => {
    const then = { properties: { options: { $ref: `#/definitions/PanelOptions_${folder}` } } };
    if (hasFieldConfig) {
      const custom = { $ref: `#/definitions/PanelFieldConfig_${folder}` };
      then.properties.fieldConfig = {
        properties: { defaults: { properties: { custom } } },
      };
    }
    return { if: { properties: { type: { const: pluginId } }, required: ['type'] }, then };
  });
}

function generate() {
  const panels = panelConfigs();
  const workDir = mkdtempSync(join(tmpdir(), 'dashboard-schema-'));
  try {
    const entry = join(workDir, 'entry.ts');
    writeFileSync(entry, entrySource(panels));
    const generator = createGenerator({
      path: entry,
      skipTypeCheck: true,
      additionalProperties: false,
      sortProps: true,
      expose: 'export',
      topRef: true,
      jsDoc: 'extended',
    });
    const definitions = {};
    mergeDefinitions(definitions, generator.createSchema('GrafanaDashboard').definitions, 'dashboard');
    for (const { folder, hasFieldConfig } of panels) {
      const roots = [`PanelOptions_${folder}`];
      if (hasFieldConfig) roots.push(`PanelFieldConfig_${folder}`);
      for (const root of roots) {
        mergeDefinitions(definitions, generator.createSchema(root).definitions, folder);
      }
    }
    linkPanelTypes(definitions, panels);
    const sorted = Object.fromEntries(Object.entries(definitions).sort(([a], [b]) => (a < b ? -1 : 1)));
    return {
      $schema: 'http://json-schema.org/draft-07/schema#',
      $comment: `Generated by tests/js/generate-dashboard-schema.mjs from @grafana/schema ${schemaPackageVersion} and the panel types vendored in tests/js (${Object.values(VENDORED_PANELS).join(', ')}); do not edit.`,
      $ref: '#/definitions/GrafanaDashboard',
      // The schemaVersion a dashboard saved by this Grafana release carries.
      'x-grafana-schema': {
        package: '@grafana/schema',
        version: schemaPackageVersion,
        dashboardSchemaVersion: defaultDashboard.schemaVersion,
      },
      definitions: sorted,
    };
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

const output = `${JSON.stringify(generate(), null, 2)}\n`;
const [target] = process.argv.slice(2);
if (target) {
  writeFileSync(target, output);
} else {
  process.stdout.write(output);
}

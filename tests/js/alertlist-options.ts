// Options of Grafana's core "Alert list" panel (plugin id `alertlist`, the unified alert
// list), vendored because @grafana/schema publishes no types for this panel.
//
// Source: https://github.com/grafana/grafana, public/app/plugins/panel/alertlist/types.ts
// (UnifiedAlertListOptions and the types it uses) at commit
// 023625e99fc441210d185860e9a9eba60c40d3d5, plus `customGroupLayout` and `priorityLabels`
// (and the CustomGroupLayout enum) from a later version of that file, whose commit the
// source index did not report. No commit of the v13.2.x line could be identified. Defaults
// are from module.tsx of that later version (setPanelOptions and setMigrationHandler).
//
// Differences from the source, each keeping what Grafana saves valid:
// - BigValueColorMode, ThresholdsConfig and ValueMapping come from @grafana/schema (the
//   source takes them from @grafana/ui and @grafana/data, which re-export the same shapes),
//   so the schema shares their definitions with the dashboard model.
// - `datasource` and `folder` may be null: that is their default in module.tsx, and the
//   data source picker sets `folder` to null when it selects one other than Grafana.
// - `customGroupLayout` and `priorityLabels` are optional, because they may postdate 13.2.
// - The value exports (STAT_THRESHOLDS_DEFAULT, PRIORITY_LABELS_MAX) are left out, and
//   `datasource` is documented: the picker in module.tsx stores the data source's name.
//
// Defaults: viewMode "list", groupMode "default", groupBy [], customGroupLayout "byRule",
// showInstances false, priorityLabels [] (at most 3 keys), maxItems 20, sortOrder 1
// (AlphaAsc), dashboardAlerts false, alertName "", alertInstanceLabelFilter "",
// datasource null (every rule source), folder null, showInactiveAlerts false, stateFilter
// { firing: true, pending: true, recovering: true, noData: false, normal: false,
// error: true }, statColorMode "none", statThresholds { mode: "absolute", steps:
// [{ value: null (-Infinity), color: "green" }, { value: 80, color: "red" }] },
// statValueMappings []. The editor shows the stat* options only with the feature toggle
// alertingAlertListPanelEnhancements, but the migration handler sets them on every panel.
import type { BigValueColorMode, ThresholdsConfig, ValueMapping } from '@grafana/schema';

export enum SortOrder {
  AlphaAsc = 1,
  AlphaDesc,
  Importance,
  TimeAsc,
  TimeDesc,
}

export enum GroupMode {
  Default = 'default',
  Custom = 'custom',
}

/** How custom grouping lays out rules relative to label groups. */
export enum CustomGroupLayout {
  /** One row per alert rule, then subgroups by the chosen labels. */
  ByRule = 'byRule',
  /** One row per label tuple across rules (legacy custom grouping). */
  Flat = 'flat',
}

export enum ViewMode {
  List = 'list',
  Stat = 'stat',
}

export interface StateFilter {
  firing: boolean;
  pending: boolean;
  inactive?: boolean; // backwards compat
  recovering: boolean;
  noData: boolean;
  normal: boolean;
  error: boolean;
}

export interface UnifiedAlertListOptions {
  maxItems: number;
  sortOrder: SortOrder;
  dashboardAlerts: boolean;
  groupMode: GroupMode;
  groupBy: string[];
  /** Layout for custom grouping; ignored when groupMode is default. */
  customGroupLayout?: CustomGroupLayout;
  alertName: string;
  showInstances: boolean;
  /**
   * Label keys to show first on each instance. Remaining labels collapse behind
   * "+ N other labels". Empty keeps the default label display.
   */
  priorityLabels?: string[];
  folder: { uid: string; title: string } | null;
  stateFilter: StateFilter;
  alertInstanceLabelFilter: string;
  /** Name (not uid) of the data source whose rules to show; null shows every rule source. */
  datasource: string | null;
  viewMode: ViewMode;
  showInactiveAlerts: boolean;
  statColorMode: BigValueColorMode;
  statThresholds: ThresholdsConfig;
  statValueMappings: ValueMapping[];
}

export type Options = UnifiedAlertListOptions;

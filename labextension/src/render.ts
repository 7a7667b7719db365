/**
 * DOM builders for the sidebar's sections. Text always goes through textContent, never innerHTML,
 * so names and ids coming from the store can't inject markup.
 */
import { formatDuration, formatStart, formatValue, shortId, statusClass } from './format';
import { IComputeTarget, IExperiment, IProgress, IRunSummary } from './models';

type Attrs = { [name: string]: string };

/** Run ids longer than this are cut in the sidebar's label, so their tail is shown beside the start time. */
const LONG_ID = 20;

/** Create an element with attributes and children (strings become text nodes). */
export function h(tag: string, attrs: Attrs = {}, ...children: (Node | string | null)[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    el.setAttribute(name, value);
  }
  for (const child of children) {
    if (child !== null) {
      el.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
  }
  return el;
}

export function statusBadge(status: string): HTMLElement {
  return h('span', { class: `nbml-status ${statusClass(status)}`, title: status }, status);
}

function nodesText(nodes: IComputeTarget['nodes']): string {
  if (!nodes) {
    return '—';
  }
  const parts = Object.entries(nodes)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `${n} ${state}`);
  return parts.length ? parts.join(', ') : '0';
}

export function computeTable(targets: IComputeTarget[]): HTMLElement {
  if (targets.length === 0) {
    return h('p', { class: 'nbml-empty' }, 'No compute targets.');
  }
  const rows = targets.map(t =>
    h(
      'tr',
      { 'data-target': t.name, title: t.error ?? '' },
      h('td', { class: 'nbml-name' }, t.name),
      h('td', {}, t.kind),
      h('td', {}, statusBadge(t.status)),
      h('td', { class: 'nbml-nodes' }, nodesText(t.nodes))
    )
  );
  return h(
    'table',
    { class: 'nbml-table nbml-compute' },
    h(
      'thead',
      {},
      h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Kind'), h('th', {}, 'Status'), h('th', {}, 'Nodes'))
    ),
    h('tbody', {}, ...rows)
  );
}

/** "accuracy 0.91"; a parent's is its best child's: "best AUC_weighted 0.9912". */
export function metricText(run: IRunSummary): string {
  const m = run.primary_metric;
  if (!m) {
    return '';
  }
  return `${m.best_run_id ? 'best ' : ''}${m.name} ${formatValue(m.value)}`;
}

export interface IRunRowCallbacks {
  selected: string | null;
  onSelect: (run: IRunSummary) => void;
}

function progressBar(p: IProgress): HTMLElement {
  const pct = p.total > 0 ? Math.min(100, Math.round((100 * p.done) / p.total)) : 0;
  const bar = h('span', { class: 'nbml-progress-bar' }, h('span', { class: 'nbml-progress-fill' }));
  (bar.firstChild as HTMLElement).style.width = `${pct}%`;
  return h(
    'div',
    { class: 'nbml-run-line nbml-progress', title: `${p.done} of ${p.total} iterations ended` },
    bar,
    h('span', { class: 'nbml-progress-text' }, `${p.done} / ${p.total} iterations`)
  );
}

function runRow(run: IRunSummary, number: number | null, cb: IRunRowCallbacks): HTMLElement {
  // Runs of one experiment share a display name: the run number, start time and id tail tell them apart.
  const label = run.display_name || run.run_id;
  const tag = number !== null ? `#${number}` : '';
  const progress = run.progress;
  const metric = run.primary_metric;
  const row = h(
    'li',
    {
      class: 'nbml-run' + (cb.selected === run.run_id ? ' nbml-selected' : ''),
      'data-run-id': run.run_id,
      'data-status': run.status,
      tabindex: '0',
      title: run.error ? `${run.run_id}\n${run.error}` : run.run_id
    },
    h(
      'div',
      { class: 'nbml-run-line' },
      statusBadge(run.status),
      h('span', { class: 'nbml-run-number' }, tag),
      h('span', { class: 'nbml-run-label' }, label)
    ),
    h(
      'div',
      { class: 'nbml-run-line nbml-run-when' },
      h('span', { class: 'nbml-run-start' }, formatStart(run.started_at ?? run.created_at)),
      // The id's tail: runs may share a display name, and a long run id is cut in the narrow label.
      run.display_name || run.run_id.length > LONG_ID
        ? h('span', { class: 'nbml-run-short-id' }, shortId(run.run_id))
        : null,
      h('span', { class: 'nbml-run-duration' }, formatDuration(run.duration_seconds))
    ),
    h(
      'div',
      { class: 'nbml-run-line nbml-run-info' },
      h(
        'span',
        {
          class: 'nbml-run-metric',
          title: metric?.best_run_id ? `Best so far: run ${metric.best_run_id}` : (metric?.name ?? '')
        },
        metricText(run)
      )
    ),
    progress ? progressBar(progress) : null
  );
  row.addEventListener('click', () => cb.onSelect(run));
  row.addEventListener('keydown', event => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      cb.onSelect(run);
    }
  });
  return row;
}

export interface IExperimentCallbacks extends IRunRowCallbacks {
  collapsed: Set<string>;
  onToggle: (name: string) => void;
  onOpenExperiment: (name: string) => void;
}

export function experimentList(experiments: IExperiment[], cb: IExperimentCallbacks): HTMLElement {
  if (experiments.length === 0) {
    return h('p', { class: 'nbml-empty' }, 'No experiments yet. Submit a run from a notebook.');
  }
  const items = experiments.map(exp => {
    const open = !cb.collapsed.has(exp.name);
    const header = h(
      'button',
      { class: 'nbml-experiment-header', 'aria-expanded': String(open) },
      h('span', { class: 'nbml-caret' }, open ? '▾' : '▸'),
      h('span', { class: 'nbml-name' }, exp.name),
      h('span', { class: 'nbml-count' }, `${exp.run_count} run${exp.run_count === 1 ? '' : 's'}`)
    );
    header.addEventListener('click', () => cb.onToggle(exp.name));
    const link = h(
      'button',
      { class: 'nbml-experiment-open', title: `Open the page of experiment ${exp.name}` },
      'Compare'
    );
    link.addEventListener('click', () => cb.onOpenExperiment(exp.name));
    // Latest runs come newest first; a run's number counts the experiment's top-level runs.
    const runs = open
      ? h('ul', { class: 'nbml-runs' }, ...exp.latest_runs.map((r, i) => runRow(r, exp.run_count - i, cb)))
      : null;
    return h(
      'li',
      { class: 'nbml-experiment', 'data-experiment': exp.name },
      h('div', { class: 'nbml-experiment-line' }, header, link),
      runs
    );
  });
  return h('ul', { class: 'nbml-experiments' }, ...items);
}

export interface IActionCallbacks {
  openPage: (run: IRunSummary) => void;
  openExperiment: (run: IRunSummary) => void;
  cancel: (run: IRunSummary) => void;
  copyId: (run: IRunSummary) => void;
  insert: (run: IRunSummary) => void;
}

function actionButton(
  label: string,
  action: string,
  onClick: () => void,
  disabled = false,
  mod = 'jp-mod-reject'
): HTMLElement {
  const button = h(
    'button',
    { class: `jp-Button jp-mod-styled ${mod} nbml-action`, 'data-action': action },
    label
  ) as HTMLButtonElement;
  button.disabled = disabled;
  button.addEventListener('click', onClick);
  return button;
}

export function actionPanel(run: IRunSummary | null, cb: IActionCallbacks): HTMLElement {
  if (run === null) {
    return h('p', { class: 'nbml-empty' }, 'Select a run above.');
  }
  const cancellable = !run.is_terminal && !run.cancel_requested;
  return h(
    'div',
    { class: 'nbml-actions', 'data-run-id': run.run_id },
    h('div', { class: 'nbml-selected-run' }, statusBadge(run.status), h('code', {}, run.run_id)),
    actionButton('Open run page', 'open', () => cb.openPage(run), false, 'jp-mod-accept'),
    actionButton('Open experiment page', 'experiment', () => cb.openExperiment(run)),
    actionButton('Cancel run', 'cancel', () => cb.cancel(run), !cancellable, 'jp-mod-warn'),
    actionButton('Copy run id', 'copy', () => cb.copyId(run)),
    actionButton('Insert Run.get in notebook', 'insert', () => cb.insert(run))
  );
}

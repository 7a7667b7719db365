/**
 * The selected run's ranks, for a distributed run: node and process counts and each rank's state, exit
 * code, node and last error line (the server's `distributed` model, nbml.compute._ranks.rank_view).
 */
import { h } from './render';

export interface IRank {
  rank: number;
  node: number;
  host: string;
  state: string;
  exit_code: number | null;
  error: string;
  log: string;
}

export interface IDistributed {
  backend: string;
  communication_backend: string | null;
  node_count: number;
  process_count: number;
  process_count_per_node: number;
  ranks: IRank[];
  failure: string | null;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The ranks panel, or null for a run that is not distributed. */
export function rankPanel(d: IDistributed | null | undefined): HTMLElement | null {
  if (!d) {
    return null;
  }
  const comm = d.communication_backend ? ` (${d.communication_backend})` : '';
  // Four narrow columns fit the sidebar; a failed rank's error gets a row of its own under it.
  const rows = d.ranks.flatMap(r => [
    h(
      'tr',
      { class: 'nbml-rank', 'data-rank': String(r.rank), 'data-state': r.state, title: r.log },
      h('td', {}, String(r.rank)),
      h('td', { title: r.host }, String(r.node)),
      h('td', {}, h('span', { class: `nbml-rank-state nbml-rank-${r.state}` }, r.state)),
      h('td', {}, r.exit_code === null || r.exit_code === undefined ? '' : String(r.exit_code))
    ),
    ...(r.error
      ? [
          h(
            'tr',
            { class: 'nbml-rank-error-row', 'data-rank': String(r.rank) },
            h('td', { class: 'nbml-rank-error', colspan: '4', title: r.error }, r.error)
          )
        ]
      : [])
  ]);
  return h(
    'div',
    { class: 'nbml-ranks' },
    h(
      'div',
      { class: 'nbml-ranks-summary' },
      `${d.backend}${comm}: `,
      h('span', { class: 'nbml-ranks-nodes' }, plural(d.node_count, 'node', 'nodes')),
      ' × ',
      String(d.process_count_per_node),
      ' = ',
      h('span', { class: 'nbml-ranks-processes' }, plural(d.process_count, 'process', 'processes'))
    ),
    h(
      'table',
      { class: 'nbml-table nbml-ranks-table' },
      h(
        'thead',
        {},
        h('tr', {}, h('th', {}, 'Rank'), h('th', {}, 'Node'), h('th', {}, 'State'), h('th', {}, 'Exit'))
      ),
      h('tbody', {}, ...rows)
    )
  );
}

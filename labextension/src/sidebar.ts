/**
 * The nbml sidebar: compute targets, experiments with their latest runs, and actions on one run.
 *
 * It reads the server extension's REST API, so it shows every run in the workspace store, whichever
 * process started it. A Lumino Poll refreshes it: backing off while the server fails, and standing by
 * while the sidebar or the browser tab is hidden.
 */
import { Clipboard, Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { Poll } from '@lumino/polling';
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { experimentPageUrl, requestAPI, runPageUrl } from './api';
import { runGetSnippet } from './format';
import { ICancelResult, IComputeList, IExperimentList, IExperiment, IRunSummary } from './models';
import { IDistributed, rankPanel } from './ranks';
import { actionPanel, computeTable, experimentList, h } from './render';

/** Defaults of the settings (schema/sidebar.json). */
export const DEFAULT_INTERVAL_MS = 3000;
export const DEFAULT_RUNS_PER_EXPERIMENT = 5;

export class NbmlSidebar extends Widget {
  constructor(options: NbmlSidebar.IOptions) {
    super();
    this._commands = options.commands;
    this._runsPerExperiment = options.runsPerExperiment ?? DEFAULT_RUNS_PER_EXPERIMENT;
    this.id = 'nbml-sidebar';
    this.addClass('nbml-Sidebar');
    this.title.caption = 'nbml runs';

    const refresh = h('button', { class: 'jp-Button nbml-refresh', title: 'Refresh now' }, '⟳');
    refresh.addEventListener('click', () => void this._poll.refresh());
    this._message = h('div', { class: 'nbml-message', role: 'status' });
    this.node.append(
      h('header', { class: 'nbml-header' }, h('h2', {}, 'nbml'), refresh),
      this._message,
      this._section('compute', 'Compute targets', this._compute),
      this._section('experiments', 'Experiments', this._experiments),
      this._section('actions', 'Actions', h('div', {}, this._actions, this._ranks))
    );
    this._renderActions();

    this._poll = new Poll<void, Error, 'stand-by'>({
      factory: () => this.refresh(),
      frequency: { interval: options.interval ?? DEFAULT_INTERVAL_MS, backoff: true, max: 60 * 1000 },
      name: 'nbml:sidebar',
      // Idle while the sidebar is closed, and (via 'when-hidden') while the browser tab is hidden.
      standby: () => (this.isVisible ? 'when-hidden' : true)
    });
    // The poll's state on the node, for tests and for anyone debugging a silent sidebar.
    this._poll.ticked.connect((_, state) => {
      this.node.dataset.pollPhase = state.phase;
      this.node.dataset.pollInterval = String(state.interval);
    });
  }

  /** Apply new settings: the refresh interval (ms) and how many runs each experiment lists. */
  configure(options: { interval?: number; runsPerExperiment?: number }): void {
    if (options.runsPerExperiment !== undefined) {
      this._runsPerExperiment = options.runsPerExperiment;
    }
    if (options.interval !== undefined && options.interval !== this._poll.frequency.interval) {
      this._poll.frequency = { ...this._poll.frequency, interval: options.interval };
    }
    this.node.dataset.runsPerExperiment = String(this._runsPerExperiment);
    void this._poll.refresh();
  }

  /** Fetch compute targets and experiments and redraw; rejects on error so the poll backs off. */
  async refresh(): Promise<void> {
    try {
      // Each section is drawn as soon as its answer comes (a slow target status doesn't hold the runs).
      await Promise.all([
        requestAPI<IComputeList>('compute').then(compute =>
          this._compute.replaceChildren(computeTable(compute.targets))
        ),
        // A parent's progress and best metric come in the same answer (one request per refresh).
        requestAPI<IExperimentList>(`experiments?latest=${this._runsPerExperiment}`).then(async answer => {
          this._renderRuns(answer.experiments);
          await this._refreshRanks();
        })
      ]);
      this._setMessage('');
    } catch (error) {
      this._setMessage(`Could not reach the nbml server extension: ${(error as Error).message}`, true);
      throw error;
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this._poll.refresh();
  }

  private _section(name: string, title: string, body: HTMLElement): HTMLElement {
    return h('section', { class: 'nbml-section', 'data-section': name }, h('h3', {}, title), body);
  }

  private _setMessage(text: string, error = false): void {
    this._message.textContent = text;
    this._message.classList.toggle('nbml-error', error);
  }

  private _renderRuns(experiments: IExperiment[]): void {
    this._lastExperiments = experiments;
    this._renderExperiments();
    // Keep the selected run's row in sync (its status may have changed).
    if (this._selected) {
      const id = this._selected.run_id;
      const fresh = experiments.flatMap(e => e.latest_runs).find(r => r.run_id === id);
      if (fresh) {
        this._selected = fresh;
      }
    }
    this._renderActions();
  }

  private _renderExperiments(): void {
    this._experiments.replaceChildren(
      experimentList(this._lastExperiments, {
        collapsed: this._collapsed,
        selected: this._selected?.run_id ?? null,
        onOpenExperiment: name => window.open(experimentPageUrl(name), '_blank', 'noopener'),
        onSelect: run => {
          this._selected = run;
          this._renderExperiments();
          this._renderActions();
          void this._refreshRanks();
        },
        onToggle: name => {
          if (!this._collapsed.delete(name)) {
            this._collapsed.add(name);
          }
          this._renderExperiments();
        }
      })
    );
  }

  private _renderActions(): void {
    this._actions.replaceChildren(
      actionPanel(this._selected, {
        openPage: run => window.open(runPageUrl(run.page), '_blank', 'noopener'),
        openExperiment: run => window.open(experimentPageUrl(run.experiment), '_blank', 'noopener'),
        cancel: run => void this._cancel(run),
        copyId: run => {
          Clipboard.copyToSystem(run.run_id);
          Notification.success(`Copied run id ${run.run_id}`, { autoClose: 3000 });
        },
        insert: run => void this._insert(run)
      })
    );
  }

  /**
   * The selected run's ranks when it is distributed (read again at each refresh while it is active).
   */
  private async _refreshRanks(): Promise<void> {
    const run = this._selected;
    if (run === null) {
      this._ranksOf = null;
      this._ranks.replaceChildren();
      return;
    }
    if (this._ranksOf === run.run_id && this._ranksFinal) {
      return;
    }
    const details = await requestAPI<IRunSummary & { distributed?: IDistributed | null }>(
      `runs/${encodeURIComponent(run.run_id)}`
    ).catch(() => null);
    if (details === null || this._selected?.run_id !== run.run_id) {
      return;
    }
    this._ranksOf = run.run_id;
    this._ranksFinal = details.is_terminal;
    const panel = rankPanel(details.distributed);
    this._ranks.replaceChildren(...(panel ? [panel] : []));
  }

  private async _cancel(run: IRunSummary): Promise<void> {
    const result = await showDialog({
      title: 'Cancel run?',
      body: `Cancel run ${run.run_id} of experiment ${run.experiment} (now ${run.status})? Its child runs are canceled too.`,
      buttons: [Dialog.cancelButton({ label: 'Keep running' }), Dialog.warnButton({ label: 'Cancel run' })]
    });
    if (!result.button.accept) {
      return;
    }
    try {
      const answer = await requestAPI<ICancelResult>(`runs/${encodeURIComponent(run.run_id)}/cancel`, {
        method: 'POST'
      });
      Notification.info(`Cancel requested for ${answer.run_id}`, { autoClose: 3000 });
    } catch (error) {
      Notification.error(`Could not cancel ${run.run_id}: ${(error as Error).message}`);
    }
    await this._poll.refresh();
  }

  private async _insert(run: IRunSummary): Promise<void> {
    const insert = 'notebook:insert-cell-below';
    if (!this._commands.hasCommand(insert) || !this._commands.isEnabled(insert)) {
      Notification.warning('Open a notebook first: the code is inserted below its active cell.', {
        autoClose: 5000
      });
      return;
    }
    await this._commands.execute(insert);
    await this._commands.execute('notebook:replace-selection', { text: runGetSnippet(run.run_id) });
  }

  private _commands: CommandRegistry;
  private _poll: Poll<void, Error, 'stand-by'>;
  private _message: HTMLElement;
  private _compute = h('div', { class: 'nbml-body' });
  private _experiments = h('div', { class: 'nbml-body' });
  private _actions = h('div', { class: 'nbml-body' });
  private _ranks = h('div', { class: 'nbml-body nbml-ranks-panel' });
  private _ranksOf: string | null = null;
  private _ranksFinal = false;
  private _lastExperiments: IExperiment[] = [];
  private _collapsed = new Set<string>();
  private _selected: IRunSummary | null = null;
  private _runsPerExperiment: number;
}

export namespace NbmlSidebar {
  export interface IOptions {
    commands: CommandRegistry;
    /** Milliseconds between refreshes while visible (default 3000). */
    interval?: number;
    /** How many of each experiment's latest runs are listed (default 5). */
    runsPerExperiment?: number;
  }
}

import { ILabShell, ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { DEFAULT_INTERVAL_MS, DEFAULT_RUNS_PER_EXPERIMENT, NbmlSidebar } from './sidebar';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16">
<path class="jp-icon3" fill="#616161" d="M9 2h6v2h-1v5.2l5.6 9.4A2 2 0 0 1 17.9 22H6.1a2 2 0 0 1-1.7-3.4L10 9.2V4H9zm3 9.3L8.9 16h6.2z"/>
</svg>`;

export const nbmlIcon = new LabIcon({ name: 'nbml:flask', svgstr: ICON_SVG });

/** Opens the nbml sidebar (left area). */
export const OPEN_COMMAND = 'nbml:open-sidebar';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbml-labextension:sidebar',
  description: 'nbml runs, experiments and compute targets in the left sidebar.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ILayoutRestorer, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    restorer: ILayoutRestorer | null,
    settings: ISettingRegistry | null
  ) => {
    const sidebar = new NbmlSidebar({ commands: app.commands });
    if (settings) {
      // The poll interval and list length come from Settings > nbml sidebar (schema/sidebar.json).
      const apply = (s: ISettingRegistry.ISettings) =>
        sidebar.configure({
          interval: 1000 * Number(s.get('pollInterval').composite ?? DEFAULT_INTERVAL_MS / 1000),
          runsPerExperiment: Number(s.get('runsPerExperiment').composite ?? DEFAULT_RUNS_PER_EXPERIMENT)
        });
      void settings
        .load(plugin.id)
        .then(s => {
          apply(s);
          s.changed.connect(apply);
        })
        .catch(reason => console.error('nbml: could not load the sidebar settings', reason));
    }
    sidebar.title.icon = nbmlIcon;
    shell.add(sidebar, 'left', { rank: 800 });
    if (restorer) {
      restorer.add(sidebar, 'nbml-sidebar');
    }
    app.commands.addCommand(OPEN_COMMAND, {
      label: 'Show nbml runs',
      execute: () => shell.activateById(sidebar.id)
    });
  }
};

export default plugin;

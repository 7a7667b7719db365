import { ILabShell, ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { LabIcon } from '@jupyterlab/ui-components';

import { NbmlSidebar } from './sidebar';

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
  optional: [ILayoutRestorer],
  activate: (app: JupyterFrontEnd, shell: ILabShell, restorer: ILayoutRestorer | null) => {
    const sidebar = new NbmlSidebar({ commands: app.commands });
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

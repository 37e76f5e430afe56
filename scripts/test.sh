#!/usr/bin/env bash
# The project's test command: everything CI runs, on a fresh Debian machine
# with Rust installed. Installs what it needs, then runs the format check,
# clippy with warnings denied, and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

log "toolchain components"
if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

log "system packages"
# cmake builds libopus (opusic-sys, bundled) for core/media; SIPp
# (sip-tester) is the SIP peer of the end-to-end tests.
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
if [ "${#need[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo test"
# The SIPp tests fail here instead of skipping when SIPp is missing.
export SENTIRIC_REQUIRE_SIPP=1
results=$(mktemp)
trap 'rm -f "$results"' EXIT
cargo test --workspace --locked 2>&1 | tee "$results"

if [ "${SENTIRIC_FUZZ_CHECK:-1}" = 1 ]; then
  log "fuzz targets build (stable toolchain, no instrumentation)"
  cargo check --manifest-path fuzz/Cargo.toml --bins --locked
fi

# One closing line for the whole run: cargo prints a result per test
# binary, the last of which (doc tests) is often empty.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$results"

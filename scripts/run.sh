#!/usr/bin/env bash
# The README's first command: builds the switch and runs it on its
# embedded default, on a Debian machine with only Rust installed.
#
# The one thing a Rust install lacks for the build is cmake, which builds
# libopus (core/media's Opus codec, vendored by the opusic-sys crate).
# When it is missing it is installed: Debian's package when this user may
# install packages (root, or sudo), else PyPI's `cmake` (a prebuilt binary)
# into target/tools. Arguments go to `sentiric run` (`--config FILE`, …).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'run.sh: %s\n' "$*" >&2; }

if ! command -v cmake >/dev/null 2>&1 && [ ! -x target/tools/bin/cmake ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "cmake missing (needed to build libopus): installing Debian's cmake"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cmake >&2
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && command -v apt-get >/dev/null 2>&1; then
    say "cmake missing (needed to build libopus): installing Debian's cmake with sudo"
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cmake >&2
  elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
    say "cmake missing (needed to build libopus): installing PyPI's cmake into target/tools"
    python3 -m pip install --quiet --target target/tools/pip cmake >&2
    mkdir -p target/tools/bin
    # The wheel's own binary (its bin/cmake is a Python launcher for it).
    ln -sf ../pip/cmake/data/bin/cmake target/tools/bin/cmake
  else
    say "cmake is needed to build libopus and cannot be installed here: install it (apt-get install cmake) and run this again"
    exit 1
  fi
fi
if [ -x target/tools/bin/cmake ]; then
  export PATH="$PWD/target/tools/bin:$PATH"
fi

exec cargo run --release --locked --bin sentiric -- run "$@"

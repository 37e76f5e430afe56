#!/usr/bin/env bash
# The Python the example sidecars and their tests run on: a virtual
# environment in target/python with every plugins/*/requirements.txt,
# and the Python plugin SDK (plugins/python-sdk) installed as a package,
# made (or brought up to date) when needed. Prints its python's path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/target/python
reqs=$(cat "$root"/plugins/*/requirements.txt | grep -v '^\s*#' | sort -u)
stamp=$venv/.requirements
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$reqs" ]; then
  if ! python3 -m venv --help >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >&2
  fi
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  printf '%s\n' "$reqs" > "$venv/requirements.txt"
  "$venv/bin/pip" install -q -r "$venv/requirements.txt" >&2
  printf '%s\n' "$reqs" > "$stamp"
fi
# The SDK as pip installs it for an author, again whenever its files change.
sdk=$root/plugins/python-sdk
sdk_hash=$(cd "$sdk" && find pyproject.toml README.md src -type f ! -path '*/__pycache__/*' -print0 \
  | sort -z | xargs -0 sha256sum | sha256sum)
if [ "$(cat "$venv/.sdk" 2>/dev/null)" != "$sdk_hash" ]; then
  "$venv/bin/pip" install -q --force-reinstall --no-deps "$sdk" >&2
  # Its runtime needs (grpcio, protobuf): from the requirements above, or
  # what the SDK asks for beyond them.
  "$venv/bin/pip" install -q "$sdk" >&2
  printf '%s\n' "$sdk_hash" > "$venv/.sdk"
fi
echo "$venv/bin/python"

#!/usr/bin/env bash
# Builds the Python tool in this directory into a WASI component with
# componentize-py (pinned, from PyPI, into a virtualenv under target/).
#
#   tools/py_summarize/build.sh [OUT]     default OUT: target/py/py_summarize.wasm
#
# To load it in the host, build straight into the tools directory:
#   tools/py_summarize/build.sh tools/py_summarize.wasm
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/target/py/py_summarize.wasm}"
venv="$root/target/py-venv"
version="0.25.1"

if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -q "$version"; then
    echo "installing componentize-py $version into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version"
fi
mkdir -p "$(dirname "$out")"
# Build next to the destination, then rename: a watching host never sees
# a half-written component.
"$venv/bin/componentize-py" --quiet -d "$root/wit" -w tool componentize -p "$here" app -o "$out.tmp"
mv "$out.tmp" "$out"
echo "built $out" >&2

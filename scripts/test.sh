#!/usr/bin/env bash
# The project's test command: install what the tests need, lint, then run every test.
#   - Python: the package with its [test] extra (TensorFlow, Keras, LiteRT, pytest, ruff, ...).
#   - Kotlin: Debian's kotlin + junit4 for the Android core's JVM tests, when this is a
#     Debian machine and we are root; otherwise those tests skip and say why.
#   - Lint: `ruff check .` (settings in ruff.toml).
# Usage: scripts/test.sh [--fast] [pytest arguments...]
#   --fast  skip the tests marked slow (training runs, subprocess trainers, exports, the Kotlin
#           build): the everyday tier, a few minutes. Without it every test runs, as CI does.
set -euo pipefail
cd "$(dirname "$0")/.."
markers=()
if [ "${1:-}" = "--fast" ]; then
  shift
  markers=(-m "not slow")
fi
python3 -m pip install -q -e ".[test]"
if ! command -v kotlinc >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kotlin junit4 >/dev/null) \
    || echo "scripts/test.sh: could not install kotlin/junit4; the Kotlin tests will skip" >&2
fi
python3 -m ruff check .
python3 -m pytest -q ${markers[@]+"${markers[@]}"} "$@"

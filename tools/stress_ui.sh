#!/usr/bin/env bash
# Issue 19's stress run: the page tests that create and tear down main windows, N times (default 20),
# with faulthandler so a native crash prints where it happened. Exit 1 at the first failing round.
#   bash tools/stress_ui.sh [N]
# PYTHON=/path/to/python runs another interpreter (another checkout's venv); CASCADE_STUDIO_TEST_GC=100,2,2
# makes the cyclic GC run far more often on every thread (tests/conftest.py), which brings out Qt objects
# freed on the wrong thread (issue 19's segfault, about 1 round in 20 at the default thresholds).
set -uo pipefail
cd "$(dirname "$0")/.."
N="${1:-20}"
PYTHON="${PYTHON:-.venv/bin/python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
for i in $(seq "$N"); do
  if ! QT_QPA_PLATFORM=offscreen "$PYTHON" -X faulthandler -m pytest -q -p no:cacheprovider \
      tests/ui/test_main_window.py tests/ui/test_finetune_page.py tests/ui/test_evaluation_page.py \
      > "/tmp/stress_ui_$i.log" 2>&1; then
    echo "round $i of $N failed: /tmp/stress_ui_$i.log"
    exit 1
  fi
  echo "round $i of $N passed"
done

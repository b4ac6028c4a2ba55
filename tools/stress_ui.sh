#!/usr/bin/env bash
# Issue 19's stress run: the page tests that create and tear down main windows, N times (default 20),
# with faulthandler so a native crash prints where it happened. Exit 1 at the first failing round.
#   bash tools/stress_ui.sh [N]
set -uo pipefail
cd "$(dirname "$0")/.."
N="${1:-20}"
for i in $(seq "$N"); do
  if ! QT_QPA_PLATFORM=offscreen .venv/bin/python -X faulthandler -m pytest -q -p no:cacheprovider \
      tests/ui/test_main_window.py tests/ui/test_finetune_page.py tests/ui/test_evaluation_page.py \
      > "/tmp/stress_ui_$i.log" 2>&1; then
    echo "round $i of $N failed: /tmp/stress_ui_$i.log"
    exit 1
  fi
  echo "round $i of $N passed"
done

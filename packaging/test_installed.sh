#!/usr/bin/env bash
# Install the .deb (into the system when root, else into a scratch root), run the installed
# program's --version and --self-check, time its start, then uninstall.
set -euo pipefail
DEB="$1"
if [ "$(id -u)" -eq 0 ] && command -v dpkg >/dev/null; then
  dpkg -i "$DEB" >/dev/null
  BIN=/usr/bin/cascade-studio
  UNINSTALL="dpkg -r cascade-studio"
else
  ROOTDIR="$(mktemp -d)"
  dpkg-deb -x "$DEB" "$ROOTDIR"
  BIN="$ROOTDIR/opt/cascade-studio/cascade-studio"
  UNINSTALL="rm -rf $ROOTDIR"
fi
export QT_QPA_PLATFORM=offscreen
"$BIN" --version
"$BIN" --self-check
# the bundled tokenizer works offline (dataset validation)
printf '%s\n' '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}' > /tmp/cs-one.jsonl
"$BIN" dataset validate /tmp/cs-one.jsonl --json > /tmp/cs-validate.json || true
grep -q '"too_few_examples"' /tmp/cs-validate.json && grep -q '"billed_tokens"' /tmp/cs-validate.json
rm -f /tmp/cs-one.jsonl /tmp/cs-validate.json
# the demo's MCP server runs from the bundle (agent episodes need no separate Python)
"$BIN" --run-module cascade_studio.sandbox.travel_desk --list-tools | grep -q search_flights
WS="$(mktemp -d)"
"$BIN" --workspace "$WS/ws" tiers list >/dev/null  # first run: create the workspace, warm the file cache
for i in 1 2 3; do
  CASCADE_STUDIO_STARTUP_PROBE="$(date +%s.%N)" "$BIN" --workspace "$WS/ws"
done
rm -rf "$WS"
$UNINSTALL >/dev/null
if [ "$(id -u)" -eq 0 ] && [ -e /usr/bin/cascade-studio ]; then echo "uninstall left /usr/bin/cascade-studio"; exit 1; fi
echo "installed package: self-check passed; uninstalled cleanly"

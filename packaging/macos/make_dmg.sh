#!/usr/bin/env bash
# Build "Cascade Studio.app" from the shared spec and wrap it in a dmg (run on macOS).
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION="$(python3 -c 'import re;print(re.search(r"__version__ = \"(.+?)\"", open("cascade_studio/__init__.py").read())[1])')"
python3 -m venv build/macos-venv
build/macos-venv/bin/pip install -q . "pyinstaller>=6.5"
build/macos-venv/bin/pyinstaller --noconfirm --clean --distpath dist --workpath build/macos packaging/cascade-studio.spec
"dist/Cascade Studio.app/Contents/MacOS/cascade-studio" --self-check
STAGE="$(mktemp -d)"
cp -R "dist/Cascade Studio.app" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
cp resources/THIRD_PARTY_NOTICES.md "$STAGE/Licenses.md"
hdiutil create -volname "Cascade Studio" -srcfolder "$STAGE" -ov -format UDZO "dist/CascadeStudio-$VERSION.dmg"
shasum -a 256 "dist/CascadeStudio-$VERSION.dmg" | tee "dist/CascadeStudio-$VERSION.dmg.sha256"

#!/usr/bin/env bash
# Build the Linux bundle (PyInstaller, one folder) and a .deb installer, then print checksums.
#   bash packaging/build.sh            # build into dist/
#   bash packaging/build.sh --test     # build, install the .deb into a scratch root, run its self-check
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
VERSION="$(python3 -c 'import re;print(re.search(r"__version__ = \"(.+?)\"", open("cascade_studio/__init__.py").read())[1])')"
ARCH="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
BUILD="$ROOT/build/packaging"
DIST="$ROOT/dist"

# 1. A clean build environment with the app and PyInstaller (not the developer's venv).
python3 -m venv "$BUILD/venv"
"$BUILD/venv/bin/python" -m pip install -q --upgrade pip
"$BUILD/venv/bin/python" -m pip install -q . "pyinstaller>=6.5"
"$BUILD/venv/bin/python" -m compileall -q cascade_studio >/dev/null

# 2. The bundle.
rm -rf "$DIST/cascade-studio"
"$BUILD/venv/bin/pyinstaller" --noconfirm --clean --log-level WARN --distpath "$DIST" --workpath "$BUILD/work" \
  packaging/cascade-studio.spec

# 3. Licenses and attributions travel with the bundle.
LIC="$DIST/cascade-studio/licenses"
mkdir -p "$LIC"
cp resources/THIRD_PARTY_NOTICES.md resources/bfcl/README.md "$LIC/" 2>/dev/null || true
cp LICENSE "$LIC/cascade-studio-LICENSE.txt" 2>/dev/null || true
"$BUILD/venv/bin/python" - "$LIC" <<'PY'
import importlib.metadata as md, pathlib, sys
out = pathlib.Path(sys.argv[1])
for dist in md.distributions():
    name = dist.metadata["Name"]
    for f in dist.files or []:
        if any(k in f.name.upper() for k in ("LICENSE", "COPYING", "NOTICE")):
            src = pathlib.Path(dist.locate_file(f))
            if src.is_file():
                (out / f"{name}-{f.name}").write_bytes(src.read_bytes())
PY

# 4. The .deb: /opt/cascade-studio, /usr/bin/cascade-studio, a .desktop entry and the icon.
PKG="$BUILD/deb/cascade-studio_${VERSION}_${ARCH}"
rm -rf "$PKG"
mkdir -p "$PKG/DEBIAN" "$PKG/opt" "$PKG/usr/bin" "$PKG/usr/share/applications" \
  "$PKG/usr/share/icons/hicolor/256x256/apps" "$PKG/usr/share/doc/cascade-studio"
cp -a "$DIST/cascade-studio" "$PKG/opt/cascade-studio"
ln -s /opt/cascade-studio/cascade-studio "$PKG/usr/bin/cascade-studio"
cp packaging/linux/cascade-studio.desktop "$PKG/usr/share/applications/"
cp resources/icons/cascade-studio.png "$PKG/usr/share/icons/hicolor/256x256/apps/cascade-studio.png"
cp resources/THIRD_PARTY_NOTICES.md "$PKG/usr/share/doc/cascade-studio/copyright"
SIZE_KB="$(du -sk "$PKG" | cut -f1)"
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE_KB/" packaging/linux/control > "$PKG/DEBIAN/control"
cp packaging/linux/postinst packaging/linux/postrm "$PKG/DEBIAN/"
chmod 755 "$PKG/DEBIAN/postinst" "$PKG/DEBIAN/postrm"
dpkg-deb --build --root-owner-group "$PKG" "$DIST/cascade-studio_${VERSION}_${ARCH}.deb" >/dev/null

# 5. Report: size (the budget is 250 MB for the unpacked bundle), checksums.
BUNDLE_MB="$(du -sm "$DIST/cascade-studio" | cut -f1)"
if [ "$BUNDLE_MB" -gt 250 ]; then
  echo "error: the bundle is $BUNDLE_MB MB, over the 250 MB budget; see excludes in packaging/cascade-studio.spec" >&2
  exit 1
fi
echo "bundle: $DIST/cascade-studio ($(du -sh "$DIST/cascade-studio" | cut -f1))"
echo "installer: $DIST/cascade-studio_${VERSION}_${ARCH}.deb ($(du -sh "$DIST/cascade-studio_${VERSION}_${ARCH}.deb" | cut -f1))"
(cd "$DIST" && sha256sum "cascade-studio_${VERSION}_${ARCH}.deb" | tee "cascade-studio_${VERSION}_${ARCH}.deb.sha256")

if [ "${1:-}" = "--test" ]; then
  bash packaging/test_installed.sh "$DIST/cascade-studio_${VERSION}_${ARCH}.deb"
fi

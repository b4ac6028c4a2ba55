"""Draw the app icon (three stacked tiers, cascading) into resources/icons. Run once by developers."""

import sys
from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter

app = QGuiApplication(sys.argv[:1])
out = Path(__file__).resolve().parents[1] / "resources" / "icons"
out.mkdir(parents=True, exist_ok=True)
for size in (256, 64, 32):
    img = QImage(size, size, QImage.Format.Format_ARGB32)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = size / 256
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor("#1f2a44"))
    p.drawRoundedRect(QRectF(8 * s, 8 * s, 240 * s, 240 * s), 48 * s, 48 * s)
    colors = ["#7fd1ff", "#3fa7f5", "#f5a623"]
    for i, c in enumerate(colors):
        p.setBrush(QColor(c))
        w = (120 + i * 40) * s
        x = (128 * s) - w / 2
        y = (52 + i * 56) * s
        p.drawRoundedRect(QRectF(x, y, w, 40 * s), 12 * s, 12 * s)
    p.end()
    name = "cascade-studio.png" if size == 256 else f"cascade-studio-{size}.png"
    img.save(str(out / name))
print("ok")

"""One log file per user, rotated; every handler masks things that look like keys."""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

from cascade_studio.services.paths import log_file, owner_only_folder
from cascade_studio.services.secrets import RedactSecrets

_configured: Path | None = None


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """The log holds task prompts and server messages: create it readable by its owner only."""

    def _open(self):  # type: ignore[override]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def setup_logging(level: int = logging.INFO) -> Path:
    global _configured
    path = log_file()
    if _configured == path:
        return path
    root = logging.getLogger()
    root.setLevel(level)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        owner_only_folder(path.parent)  # the log holds prompts: a folder made wider before is tightened
        handler: logging.Handler = PrivateRotatingFileHandler(
            path, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
        )
    except OSError:
        handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
    root.addHandler(handler)
    for noisy in ("httpx", "httpx2", "httpcore", "openai", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = path
    return path

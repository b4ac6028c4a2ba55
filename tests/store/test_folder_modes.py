"""A workspace folder, the app's log folder or the gateway's log folder made with wider permissions
(0777, 0755) is tightened to 0700 when opened, as their files already are (issue 33)."""

from __future__ import annotations

import os
import stat

from cascade_studio.gateway.request_log import RequestLog
from cascade_studio.services import logging_setup
from cascade_studio.services.paths import log_file
from cascade_studio.store.workspace import Workspace


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_wide_workspace_folder_is_tightened(tmp_path):
    Workspace.open(tmp_path / "ws").close()
    os.chmod(tmp_path / "ws", 0o777)
    Workspace.open(tmp_path / "ws").close()
    assert _mode(tmp_path / "ws") == 0o700


def test_a_wide_log_folder_is_tightened(tmp_path):
    folder = log_file().parent
    folder.mkdir(parents=True)
    os.chmod(folder, 0o755)
    logging_setup.setup_logging()
    try:
        assert _mode(folder) == 0o700
    finally:
        import logging

        for handler in list(logging.getLogger().handlers):
            if isinstance(handler, logging_setup.PrivateRotatingFileHandler):
                logging.getLogger().removeHandler(handler)
                handler.close()


def test_a_wide_gateway_log_folder_is_tightened(tmp_path):
    (tmp_path / "logs").mkdir()
    os.chmod(tmp_path / "logs", 0o777)
    RequestLog(tmp_path / "logs").close()
    assert _mode(tmp_path / "logs") == 0o700

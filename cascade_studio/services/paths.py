"""Where the app keeps its files. Environment variables override for tests and portable installs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

from cascade_studio import APP_ID


def _dir(env: str, default: str) -> Path:
    value = os.environ.get(env)
    path = Path(value).expanduser() if value else Path(default)
    return path


def owner_only_folder(path: Path) -> None:
    """Tighten a folder of logs (prompts, answers) to its owner, 0700, as its files are; best effort (a
    folder of another user's, or a file system without modes, stays). The workspace's own folder is
    tightened by store.workspace, which cannot import this."""
    try:
        if path.is_dir() and path.stat().st_mode & 0o077:
            os.chmod(path, 0o700)
    except OSError:
        pass


def data_dir() -> Path:
    return _dir("CASCADE_STUDIO_DATA_DIR", platformdirs.user_data_dir(APP_ID, appauthor=False))


def config_dir() -> Path:
    return _dir("CASCADE_STUDIO_CONFIG_DIR", platformdirs.user_config_dir(APP_ID, appauthor=False))


def log_dir() -> Path:
    return _dir("CASCADE_STUDIO_LOG_DIR", platformdirs.user_log_dir(APP_ID, appauthor=False))


def log_file() -> Path:
    return log_dir() / "cascade-studio.log"


def default_workspace() -> Path:
    return data_dir() / "workspaces" / "default"


def demo_workspace() -> Path:
    return data_dir() / "workspaces" / "demo"


def sandbox_dir() -> Path:
    """The built-in sandbox's data folder (the fine-tuned models it remembers across restarts)."""
    return data_dir() / "sandbox"


def resources_dir() -> Path:
    """Bundled data: inside a PyInstaller bundle, the installed package, or the source tree."""
    bundle = getattr(sys, "_MEIPASS", None)
    candidates = []
    if bundle:
        candidates.append(Path(bundle) / "resources")
    here = Path(__file__).resolve().parent.parent
    candidates += [here / "resources", here.parent / "resources"]
    for c in candidates:
        if (c / "prices").is_dir():
            return c
    raise FileNotFoundError("Cascade Studio's resources folder is missing; reinstall the application.")

"""Tests of the local trainer need the `local` extra (torch, transformers, peft). CI installs it and
sets CASCADE_STUDIO_REQUIRE_LOCAL=1, so there a missing extra fails instead of skipping."""

from __future__ import annotations

import importlib.util
import os

import pytest

from tests.ui.conftest import qloop  # noqa: F401 - the qasync loop fixture, for the page test

MISSING = [m for m in ("torch", "transformers", "peft") if importlib.util.find_spec(m) is None]
# No progress bars (and no tqdm monitor thread) in the test process; the trainer's own log is quiet too.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


def pytest_collection_modifyitems(config, items):
    if not MISSING:
        return
    if os.environ.get("CASCADE_STUDIO_REQUIRE_LOCAL") == "1":
        raise pytest.UsageError(f"CASCADE_STUDIO_REQUIRE_LOCAL=1 but {', '.join(MISSING)} missing: "
                                "pip install -e '.[test,local]'")
    skip = pytest.mark.skip(reason=f"needs the local extra ({', '.join(MISSING)} missing)")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from tests.trainer.tiny import build_model, examples

    return build_model(tmp_path_factory.mktemp("tiny") / "tiny-llama", examples())

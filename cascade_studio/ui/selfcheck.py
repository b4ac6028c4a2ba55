"""`cascade-studio --self-check`: prove an installation works, from the installed program itself.

Opens the main window offscreen on a temporary workspace, reports the keyring backend, and
round-trips a chat completion through the built-in sandbox with the openai SDK. Exit 0 when
every step passes; otherwise 1, with the failing step named."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path


def run_self_check() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    steps: list[tuple[str, bool, str]] = []
    started = time.perf_counter()

    def step(name: str, fn) -> bool:
        try:
            detail = fn() or ""
            steps.append((name, True, detail))
            return True
        except Exception as exc:  # noqa: BLE001 - reported, then the exit status says it failed
            steps.append((name, False, f"{type(exc).__name__}: {exc}"))
            return False

    from cascade_studio import __version__

    print(f"Cascade Studio {__version__} self-check ({sys.executable})", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("CASCADE_STUDIO_CONFIG_DIR", str(Path(tmp) / "config"))
        os.environ.setdefault("CASCADE_STUDIO_DATA_DIR", str(Path(tmp) / "data"))
        state: dict[str, object] = {}

        def resources() -> str:
            from cascade_studio.services.catalog import load_bundled
            from cascade_studio.services.paths import resources_dir

            catalog = load_bundled()
            return f"{resources_dir()} ({len(catalog)} model prices)"

        def window() -> str:
            from cascade_studio.services.secrets import SecretStore
            from cascade_studio.services.settings import AppSettings
            from cascade_studio.ui.app import make_app
            from cascade_studio.ui.main_window import MainWindow

            app = make_app()
            w = MainWindow(SecretStore(), AppSettings(Path(tmp) / "settings.json"))
            if not w.open_workspace(Path(tmp) / "workspace"):
                raise RuntimeError("the temporary workspace did not open")
            w.show()
            app.processEvents()
            pages = [w.nav.item(i).text() for i in range(w.nav.count())]
            state["window"] = w
            w.close()
            return f"{len(pages)} pages: {', '.join(pages)}"

        def qt_binding() -> str:
            import PySide6

            from cascade_studio.ui.qt_binding import binding_problem

            problem = binding_problem()
            if problem:
                raise RuntimeError(problem)
            return f"PySide6 {PySide6.__version__} keeps its references"

        def keyring_backend() -> str:
            from cascade_studio.services.secrets import SecretStore

            info = SecretStore().info()
            return f"{info.name} ({'usable' if info.usable and info.secure else 'not usable'}): {info.message}"

        def sandbox_round_trip() -> str:
            import openai

            from cascade_studio.sandbox.app import SandboxConfig
            from cascade_studio.sandbox.server import SandboxThread

            thread = SandboxThread(SandboxConfig(latency_scale=0))
            url = thread.start()
            try:
                client = openai.OpenAI(api_key="sk-self-check", base_url=url, max_retries=0, timeout=10)
                reply = client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "Weather in Paris?"}],
                    tools=[{"type": "function", "function": {"name": "get_weather", "description": "Get the weather",
                                                             "parameters": {"type": "object", "properties": {
                                                                 "city": {"type": "string"}}}}}],
                    logprobs=True, top_logprobs=2)
                call = reply.choices[0].message.tool_calls[0].function.name
            finally:
                thread.stop()
            return f"{url}: gpt-4o-mini called {call}, {reply.usage.total_tokens} tokens"

        ok = step("resources", resources)
        ok &= step("main window (offscreen)", window)
        ok &= step("Qt binding", qt_binding)
        step("keyring backend", keyring_backend)  # informative: a missing keyring is not a failure
        ok &= step("sandbox round trip", sandbox_round_trip)
    for name, passed, detail in steps:
        print(f"  [{'ok' if passed else 'FAIL'}] {name}: {detail}", flush=True)
    print(f"self-check {'passed' if ok else 'FAILED'} in {time.perf_counter() - started:.1f} s", flush=True)
    return 0 if ok else 1

"""Entry point of the packaged program (the same CLI as `cascade-studio` from pip)."""

import multiprocessing
import sys

from cascade_studio.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    if sys.argv[1:2] == ["--run-module"] and len(sys.argv) > 2:
        # `python -m MODULE ARGS` for the packaged app, which has no separate interpreter: the demo's
        # MCP server and Python-module environments (services.agent.environments.python_command)
        import runpy

        module = sys.argv[2]
        sys.argv = [module, *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        sys.exit(0)
    sys.exit(main())

"""A Python module of functions served as an MCP stdio server, so an environment's tools run in a
process of their own: a tool that crashes, hangs or leaks cannot take the app down.

    python -m cascade_studio.services.agent.module_server PATH/TO/tools.py   (or a dotted module name)

Every public function defined in the module (not imported into it) becomes a tool: its name, its
docstring as the description, its type hints as the JSON Schema of its arguments. An exception
raised by a tool is a tool error the model reads, not a crash of the server.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType


def load_module(target: str) -> ModuleType:
    path = Path(target)
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise SystemExit(f"{target}: no such Python file")
        spec = importlib.util.spec_from_file_location(f"cascade_env_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise SystemExit(f"{target}: not a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(target)


def tool_functions(module: ModuleType) -> list:
    return [obj for name, obj in vars(module).items()
            if not name.startswith("_") and inspect.isfunction(obj) and obj.__module__ == module.__name__]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m cascade_studio.services.agent.module_server MODULE_OR_FILE", file=sys.stderr)
        return 2
    from mcp.server.mcpserver import MCPServer

    module = load_module(args[0])
    functions = tool_functions(module)
    if not functions:
        print(f"{args[0]}: defines no public functions to serve as tools", file=sys.stderr)
        return 2
    server = MCPServer(Path(args[0]).stem, warn_on_duplicate_tools=False)
    for fn in functions:
        server.add_tool(fn, description=inspect.getdoc(fn) or fn.__name__)
    server.run("stdio")
    return 0


if __name__ == "__main__":
    sys.exit(main())

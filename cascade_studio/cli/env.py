"""`env`: environments that give agent episodes their tools (MCP servers, Python modules)."""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex

from cascade_studio.cli.common import CliError, open_ws, print_json


def register(sub: argparse._SubParsersAction) -> None:
    env = sub.add_parser("env", help="environments (MCP servers, Python modules) that run agents' tools")
    env.set_defaults(handler=run)
    actions = env.add_subparsers(dest="env_cmd", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add (or replace) an environment")
    add.add_argument("name")
    how = add.add_mutually_exclusive_group(required=True)
    how.add_argument("--stdio", metavar="COMMAND", help='an MCP server started as a command line, e.g. "npx -y server"')
    how.add_argument("--url", help="an MCP server's Streamable HTTP endpoint, e.g. http://127.0.0.1:8000/mcp")
    how.add_argument("--python", metavar="MODULE", help="a .py file (or dotted module) of type-hinted functions")
    add.add_argument("--cwd", help="working folder of the server's process")
    add.add_argument("--env", action="append", default=[], metavar="K=V",
                     help="a variable for the server's process (value kept in the OS keyring)")
    add.add_argument("--header", action="append", default=[], metavar="K=V",
                     help="an HTTP header (value kept in the OS keyring; sent over https or to this machine only)")
    add.add_argument("--allow-insecure", action="store_true",
                     help="send the headers over plain http to another machine (anyone on the network can read them)")
    add.add_argument("--timeout", type=float, default=None, metavar="S", help="per tool call timeout (default 30 s)")
    add.add_argument("--no-check", action="store_true", help="store it without starting it to list its tools")
    lst = actions.add_parser("list", help="the workspace's environments")
    lst.add_argument("--json", action="store_true")
    tools = actions.add_parser("tools", help="an environment's tools, as OpenAI tool definitions")
    tools.add_argument("name")
    tools.add_argument("--json", action="store_true")
    call = actions.add_parser("call", help="call one tool in a fresh session (a test)")
    call.add_argument("name")
    call.add_argument("tool")
    call.add_argument("arguments", nargs="?", default="{}", help="the arguments as a JSON object")
    call.add_argument("--json", action="store_true")
    rm = actions.add_parser("remove", help="remove an environment (and its secrets from the keyring)")
    rm.add_argument("name")


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"{flag} {item!r}: write it as KEY=VALUE", code=2)
        out[key.strip()] = value
    return out


def run(args: argparse.Namespace) -> int:
    from cascade_studio.services.agent import environments as envs
    from cascade_studio.services.secrets import SecretStore

    secrets = SecretStore()
    with open_ws(args) as ws:
        if args.env_cmd == "add":
            return _add(args, ws, secrets)
        if args.env_cmd == "list":
            rows = envs.list_environments(ws)
            if args.json:
                print_json(rows)
            elif not rows:
                print("No environments yet. Add one: cascade-studio env add NAME --stdio \"COMMAND\" (or --url, --python)")
            else:
                for r in rows:
                    print(f"{r['name']:<20} {r['kind']:<6} {r['target']}  ({r['tasks']} task(s))")
            return 0
        if args.env_cmd == "remove":
            if not envs.remove_environment(ws, secrets, args.name):
                raise CliError(f"No environment named {args.name!r}.")
            print(f"Removed environment {args.name}")
            return 0
        spec = envs.get_environment(ws, args.name)
    if args.env_cmd == "tools":
        tools = asyncio.run(envs.list_tools(spec, secrets))
        if args.json:
            print_json(tools)
        else:
            for t in tools:
                fn = t["function"]
                print(f"{fn['name']}: {fn['description'].splitlines()[0] if fn['description'] else ''}")
        return 0
    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as exc:
        raise CliError(f"ARGUMENTS is not JSON ({exc.msg} at character {exc.pos}); e.g. '{{\"city\": \"Paris\"}}'",
                       code=2) from None
    if not isinstance(arguments, dict):
        raise CliError("ARGUMENTS must be a JSON object, e.g. '{\"city\": \"Paris\"}'", code=2)
    result = asyncio.run(envs.try_call(spec, secrets, args.tool, arguments))
    if args.json:
        print_json(result.to_json())
    else:
        print(result.content if not result.error else f"Error: {result.error}")
    return 1 if result.error or result.is_error else 0


def _add(args: argparse.Namespace, ws, secrets) -> int:
    from cascade_studio.services.agent import environments as envs

    if args.stdio is not None:
        try:
            parts = shlex.split(args.stdio)
        except ValueError as exc:
            raise CliError(f"--stdio {args.stdio!r}: {exc}", code=2) from None
        if not parts:
            raise CliError("--stdio needs a command line", code=2)
        spec = envs.EnvironmentSpec(args.name, "stdio", command=parts[0], args=parts[1:], cwd=args.cwd)
    elif args.url is not None:
        spec = envs.EnvironmentSpec(args.name, "http", url=args.url.strip(), allow_insecure=args.allow_insecure)
    else:
        spec = envs.EnvironmentSpec(args.name, "python", module=args.python, cwd=args.cwd)
    if args.timeout is not None:
        spec.timeout_s = args.timeout
    replaced = envs.add_environment(ws, secrets, spec, env=_pairs(args.env, "--env"),
                                    headers=_pairs(args.header, "--header"))
    print(f"{'Replaced' if replaced else 'Added'} environment {args.name} ({spec.describe()})")
    if not args.no_check:
        try:
            tools = asyncio.run(envs.list_tools(envs.get_environment(ws, args.name), secrets))
        except envs.EnvironmentError_ as exc:
            raise CliError(f"{exc}\nThe environment is stored; fix it and check with `cascade-studio env tools "
                           f"{args.name}`, or remove it with `cascade-studio env remove {args.name}`.") from None
        names = ", ".join(t["function"]["name"] for t in tools)
        print(f"It answers with {len(tools)} tool(s): {names}")
    return 0

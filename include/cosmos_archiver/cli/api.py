"""`cosmos-archive api`: serve the reference billing API (read-through) with uvicorn on the loopback address."""

from __future__ import annotations

import argparse
import socket

from include.cosmos_archiver.cli.main import UsageError
from include.cosmos_archiver.cli.options import add_settings_option, settings_from
from include.cosmos_archiver.cli.targets import archive_store, source_container
from include.cosmos_archiver.readthrough.documents import MAX_ITEM_BYTES


def _run(args: argparse.Namespace) -> int:
    import uvicorn  # only this command needs the server

    from include.cosmos_archiver.api.app import create_app
    from include.cosmos_archiver.readthrough.repository import ReadThroughRepository

    settings = settings_from(args)
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} must be 1-65535")
    if args.max_body_bytes < 1:
        raise UsageError(f"--max-body-bytes {args.max_body_bytes} must be a positive number of bytes")
    try:
        socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"--host {args.host!r} is not an address this machine can listen on ({exc}); "
                         "use e.g. 127.0.0.1") from None
    _ensure_free(args.host, args.port)
    repository = ReadThroughRepository(source_container(settings, user_agent="billing-api"), archive_store(settings),
                                       settings)
    print(f"billing API on http://{args.host}:{args.port} (OpenAPI: /docs), container "
          f"{settings.database}/{settings.container}, archive {settings.blob_container}/{settings.blob_prefix}")
    app = create_app(repository, max_body_bytes=args.max_body_bytes)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level))
    server.run()
    if not server.started:  # uvicorn logged why (e.g. the port is in use) and returned
        raise UsageError(f"the API could not listen on {args.host}:{args.port} (see uvicorn's message above): "
                         "choose another --port or --host")
    return 0


def _ensure_free(host: str, port: int) -> None:
    """Refuse a port another process listens on before anything is printed or started (uvicorn would log an error
    and exit 3 on its own, after our "billing API on ..." line)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): another process holds it; "
                             "choose another --port (e.g. --port 8001)") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("api", help="serve the billing API with read-through to the archive")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-body-bytes", type=int, default=MAX_ITEM_BYTES,
                        help="refuse (413) a write's body over this many bytes (default: Cosmos DB's 2 MB item limit)")
    add_settings_option(parser)
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.set_defaults(func=_run)

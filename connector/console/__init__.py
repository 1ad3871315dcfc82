"""The admin console in the browser (issue 20): server-rendered Flask pages served by `mall-connector run`
when ``[console] enabled = true``. See docs/console.md."""

from __future__ import annotations

from connector.console.app import ConsoleRuntime, create_app

__all__ = ["ConsoleRuntime", "create_app", "start_console"]


def start_console(daemon):
    """Build the console for a running daemon and start serving it; returns the server (``.stop()``)."""
    from connector.console.server import ConsoleServer, runtime_for

    cfg = daemon.config.console
    app = create_app(runtime_for(daemon))
    adjust = {}
    if cfg.trusted_proxy:
        adjust = {"trusted_proxy": cfg.trusted_proxy, "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"}}
    if cfg.url_prefix:
        adjust["url_prefix"] = cfg.url_prefix
    server = ConsoleServer(app, cfg.host, cfg.port, threads=cfg.threads, **adjust)
    server.start()
    return server

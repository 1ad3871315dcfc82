"""What ``check``, ``check --fix`` and ``mapping check`` ask an API shop adapter, through optional hooks
(``check_webhooks(public_url, fix=)``, ``mapping_problems(mapping)``), so the core names no shop."""

from __future__ import annotations


def webhook_lines(config, *, fix: bool = False) -> list[tuple[bool | None, str]]:
    """(ok, text) lines about the shop's webhooks: ok None when they cannot be checked."""
    from adapters import make_adapter

    adapter = make_adapter(config)
    if not hasattr(adapter, "check_webhooks"):
        return []
    public = config.receiver.public_url
    if not public:
        return [(None, f"[receiver] public_url is not set: the {adapter.name} webhooks cannot be checked")]
    if not adapter.webhook_token():
        return [(False, f"[shop.{adapter.name}] webhook_token is not set: the shop's webhooks have no URL to call")]
    problems = adapter.check_webhooks(public, fix=fix)
    if not problems:
        return [(True, f"the {adapter.name} webhook is registered, points at {public} and is enabled")]
    out: list[tuple[bool | None, str]] = []
    for p in problems:
        out.append((True, p) if p.startswith("fixed: ") else (False, p + " (mall-connector check --fix registers / re-enables it)"))
    return out


def mapping_problems(config, mapping) -> list[str]:
    """Statuses in the mapping the shop does not have (Shoptet: from GET /api/orders/statuses)."""
    from adapters import make_adapter

    adapter = make_adapter(config)
    return adapter.mapping_problems(mapping) if hasattr(adapter, "mapping_problems") else []

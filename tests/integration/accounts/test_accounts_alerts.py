"""Alerts per account (several [accounts.*]): the key names the account; one account's trouble is its own."""

from __future__ import annotations

from types import SimpleNamespace

from connector.alert_rules import RULES, Facts, check_account_rate_limited, check_account_rejected


def facts(**kw) -> Facts:
    config = SimpleNamespace(alerts=SimpleNamespace(rate_limit_alert_after_s=900))
    return Facts(ledger=None, config=config, **kw)


def test_a_rejected_account_is_its_own_urgent_problem():
    problems = check_account_rejected(facts(account_rejected={"sk": 401, "cz": 403}))
    assert [(p.key, p.urgent) for p in problems] == [("mall_unauthorized:cz", True), ("mall_unauthorized:sk", True)]
    assert "[accounts.sk] client_id" in problems[1].message and "403" in problems[0].message
    assert check_account_rejected(facts()) == []


def test_a_lasting_429_is_reported_per_account_after_the_threshold():
    problems = check_account_rate_limited(facts(account_rate_limited_for_s={"cz": 901.0, "sk": 30.0}))
    assert [p.key for p in problems] == ["rate_limited:cz"]


def test_each_per_account_key_has_exactly_one_rule():
    for key in ("mall_unauthorized:cz", "rate_limited:sk", "mall_unauthorized", "rate_limited"):
        assert len([r for r in RULES if r.owns(key)]) == 1, key

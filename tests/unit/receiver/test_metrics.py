"""connector.metrics: own registries, label folding, ledger gauges read at scrape time."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from connector.metrics import Metrics, endpoint_label


def samples(m: Metrics) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(m.render().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_each_instance_has_its_own_registry():
    a, b = Metrics(), Metrics()
    a.push("done")
    a.push("done")
    b.push("failed")
    assert samples(a)[("mall_connector_pushes_total", (("outcome", "done"),))] == 2
    assert samples(b)[("mall_connector_pushes_total", (("outcome", "done"),))] == 0
    assert samples(b)[("mall_connector_pushes_total", (("outcome", "failed"),))] == 1


def test_known_labels_start_at_zero():
    s = samples(Metrics())
    for reason in ("not_found", "throttled", "too_large", "bad_body", "method", "ledger_error"):
        assert s[("mall_connector_webhooks_rejected_total", (("reason", reason),))] == 0


def test_mall_call_folds_order_ids_into_one_series():
    m = Metrics()
    m.mall_call("/v1/orders/123456", 200)
    m.mall_call("/v1/orders/999", 200)
    m.mall_call("/v1/orders/999/tracking", 404)
    m.mall_call("/v1/orders/unconfirmed", 429)
    s = samples(m)
    assert s[("mall_connector_mall_calls_total", (("code", "200"), ("endpoint", "/v1/orders/{id}")))] == 2
    assert s[("mall_connector_mall_calls_total", (("code", "404"), ("endpoint", "/v1/orders/{id}/tracking")))] == 1
    assert s[("mall_connector_mall_calls_total", (("code", "429"), ("endpoint", "/v1/orders/unconfirmed")))] == 1
    assert endpoint_label("/v1/orders?client_id=x") == "/v1/orders"


def test_job_ok_and_handoffs():
    m = Metrics()
    m.job_ok("poll", at=1700000000.0)
    m.handoff("new_orders")
    s = samples(m)
    assert s[("mall_connector_last_success_timestamp_seconds", (("job", "poll"),))] == 1700000000.0
    assert s[("mall_connector_handoffs_total", (("kind", "new_orders"),))] == 1


def test_ledger_gauges_are_read_at_scrape_time(ledger):
    m = Metrics()
    assert ("mall_connector_inbox_depth", ()) not in samples(m)  # nothing bound yet
    m.bind_ledger(ledger)
    assert samples(m)[("mall_connector_inbox_depth", ())] == 0
    ledger.inbox.enqueue([1, 2, 3])
    s = samples(m)
    assert s[("mall_connector_inbox_depth", ())] == 3
    assert s[("mall_connector_failed_changes", ())] == 0
    assert s[("mall_connector_open_actions", ())] == 0


def test_a_broken_ledger_does_not_break_the_scrape():
    class Broken:
        def health(self):
            raise RuntimeError("gone")

    m = Metrics()
    m.bind_ledger(Broken())
    m.push("retry")
    s = samples(m)
    assert ("mall_connector_inbox_depth", ()) not in s
    assert s[("mall_connector_pushes_total", (("outcome", "retry"),))] == 1

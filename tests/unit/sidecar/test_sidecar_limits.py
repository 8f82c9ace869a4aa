"""The per-execution rate limit and the failed-authentication limit (429 with Retry-After)."""
from __future__ import annotations

from cronium.sidecar.limits import TokenBucket
from cronium.sidecar.settings import RateLimit
from sidecar_helpers import assert_error, exec_path


def test_requests_over_the_rate_limit_get_429_with_retry_after(serve, build_app, auth):
    client = serve(build_app(rate_limit={"per_minute": 1, "burst": 3}))
    statuses = [client.get(exec_path("/input"), headers=auth)[1].status for _ in range(3)]
    assert statuses == [200, 200, 200]
    _, limited = client.get(exec_path("/input"), headers=auth)
    body = assert_error(limited, 429, "rate_limited")
    assert "1 requests per minute" in body["message"]
    assert 1 <= int(limited.headers["retry-after"]) <= 60


def test_health_is_rate_limited_by_its_own_bucket(serve, build_app, auth):
    # /health needs no token, so a job could call it without end: it has a bucket of its own.
    client = serve(build_app(health_limit={"per_minute": 1, "burst": 3}))
    assert [client.get("/health")[1].status for _ in range(3)] == [200, 200, 200]
    _, limited = client.get("/health")
    body = assert_error(limited, 429, "rate_limited")
    assert "health checks are limited to 1 per minute" in body["message"]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # ... which leaves the execution's own request budget alone.
    assert client.get(exec_path("/input"), headers=auth)[1].status == 200


def test_health_pings_the_store_once_per_check_period(serve, build_app, store, monkeypatch):
    from cronium.sidecar.routes import health

    monkeypatch.setattr(health, "STORE_CHECK_SECONDS", 3600.0)
    client = serve(build_app())
    assert {client.get("/health")[1].status for _ in range(20)} == {200}
    assert store.pings == 1  # the other 19 reused the answer


def test_health_checks_the_store_again_after_the_period(serve, build_app, store, monkeypatch):
    from cronium.sidecar.routes import health

    monkeypatch.setattr(health, "STORE_CHECK_SECONDS", 0.0)
    client = serve(build_app())
    assert client.get("/health")[1].status == 200
    store.unavailable = True
    assert client.get("/health")[1].json == {"status": "degraded", "store": "unavailable"}
    assert store.pings == 2


def test_failed_authentication_is_rate_limited_per_client_before_the_token_is_checked(serve, build_app, auth):
    client = serve(build_app(auth_failure_limit={"per_minute": 1, "burst": 2}))
    bad = {"Authorization": "Bearer not.a.token"}
    assert [client.get(exec_path("/input"), headers=bad)[1].status for _ in range(2)] == [401, 401]
    _, limited = client.get(exec_path("/input"), headers=bad)
    body = assert_error(limited, 429, "rate_limited")
    assert "failed authentication" in body["message"]
    assert int(limited.headers["retry-after"]) >= 1
    # While the client is blocked even a valid token is refused, without being looked at.
    _, blocked = client.get(exec_path("/input"), headers=auth)
    assert_error(blocked, 429, "rate_limited")


def test_successful_requests_do_not_count_as_failures(serve, build_app, auth):
    client = serve(build_app(auth_failure_limit={"per_minute": 1, "burst": 1}))
    assert [client.get(exec_path("/input"), headers=auth)[1].status for _ in range(3)] == [200, 200, 200]


def test_token_bucket_allows_a_burst_then_asks_to_wait():
    bucket = TokenBucket(RateLimit(per_minute=60, burst=2))
    assert [bucket.take(), bucket.take()] == [0, 0]
    assert bucket.take() == 1  # one token per second at 60 per minute
    assert bucket.wait_seconds() == 1

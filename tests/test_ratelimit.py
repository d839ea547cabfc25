from portal.ratelimit import RateLimiter


def test_sliding_window():
    limiter = RateLimiter(limit=2, window=10)
    assert limiter.hit("ip", now=0) == 0
    assert limiter.hit("ip", now=1) == 0
    assert limiter.hit("ip", now=2) == 8  # wait until the first hit leaves the window
    assert limiter.hit("other", now=2) == 0
    assert limiter.hit("ip", now=10.5) == 0


def test_keys_are_bounded_and_the_least_recently_hit_go_first():
    limiter = RateLimiter(limit=1, window=100, max_keys=10)
    limiter.hit("busy", now=0)
    for i in range(50):
        limiter.hit(f"k{i}", now=1 + i)
        limiter.record("busy", now=1 + i)  # hit all the time: never forgotten
    assert len(limiter) <= 10
    assert limiter.wait("busy", now=60) > 0


def test_a_refused_check_counts_against_no_rule():
    from portal.core.contract import Tenant
    from portal.ratelimit import RateLimits, Rule

    tenant = Tenant(id=1, slug="acme", name="Acme")
    per_ip, per_tenant = Rule("ip", 1, 60, "tries"), Rule("tenant", 2, 60, "tries")
    limits = RateLimits()
    assert limits.check(tenant, (per_ip, "a"), (per_tenant, "")) is None
    refused = limits.check(tenant, (per_ip, "a"), (per_tenant, ""))
    assert refused is not None and refused.rule is per_ip and refused.retry_after == 60
    # The refused try used none of the tenant's allowance: another address still gets in.
    assert limits.check(tenant, (per_ip, "b"), (per_tenant, "")) is None
    assert limits.check(tenant, (per_ip, "c"), (per_tenant, "")).rule is per_tenant


def test_a_refunded_hit_gives_its_place_back():
    limiter = RateLimiter(limit=2, window=60)
    assert limiter.hit("a", now=0) == 0
    assert limiter.hit("a", now=1) == 0
    assert limiter.hit("a", now=2) > 0
    limiter.refund("a")
    assert limiter.hit("a", now=3) == 0
    assert limiter.hit("a", now=4) > 0

from portal.ratelimit import RateLimiter


def test_sliding_window():
    limiter = RateLimiter(limit=2, window=10)
    assert limiter.hit("ip", now=0) == 0
    assert limiter.hit("ip", now=1) == 0
    assert limiter.hit("ip", now=2) == 8  # wait until the first hit leaves the window
    assert limiter.hit("other", now=2) == 0
    assert limiter.hit("ip", now=10.5) == 0

"""Rate limits: in-process sliding windows, and the named limits on every anonymous write.

`RateLimiter` counts hits per key in a sliding window (the login guard's windows are ones
too). `RateLimits` is the registry one app keeps in its services (`services(conn).rate_limits`),
so separate apps (tests, benchmarks) never share counts; like the login throttles, counts are
per process. `RateLimits.check` counts a hit against several rules at once, or against none of
them when any is used up, so a refused request spends nobody's allowance. `too_many` is the
HTTP answer: 429 with `Retry-After`.

Memory is bounded: each limiter holds at most `MAX_KEYS` keys; past that, keys whose window has
passed are dropped, then the least recently hit. A dropped key starts again from zero, so an
attacker with more addresses than that gains little: the per-tenant keys are hit all the time,
never dropped, and bound the total. IPv6 clients are counted per /64, the block one subscriber
gets, or every address of it would be a fresh allowance.

The limits. Every one counts per tenant; "address" is the client address. They are chosen so a
person never meets them and a script soon does; per-tenant ones bound what many addresses do.

Web form submissions, and anonymous chats that become tickets (counted before the write that
makes the ticket: a `start` or `contact` with an email while nobody is there):
  SUBMISSIONS_PER_ADDRESS  10 / min (tenant setting `form_ip_limit_per_minute`): a person sends
                           one or two.
  SUBMISSIONS_PER_TENANT   300 / min (`form_tenant_limit_per_minute`): far above a busy help
                           desk's intake, far below a flood.
New visitor tokens (`POST /messenger/token`; renewing a valid token is free), 429 beyond:
  TOKENS_PER_ADDRESS       60 / hour: a browser keeps its token for a year, so only first-time
                           chatters take one; even an office behind one address has few an hour.
                           Without it, new visitor ids would make the per-visitor limits moot.
  TOKENS_PER_TENANT        1200 / min: 20 a second, a big site's launch day.
Visitors' uploads (`POST /messenger/uploads`; agents' are not limited), 429 beyond:
  UPLOADS_PER_VISITOR      20 / 10 min: a few screenshots.
  UPLOADS_PER_ADDRESS      100 / hour: several visitors behind one address.
  UPLOADS_PER_TENANT       300 / min: every upload is disk space.
Chat starts (`start` frame):
  STARTS_PER_VISITOR       5 / 10 min: one chat, perhaps another after it.
  STARTS_PER_ADDRESS       10 / hour: each chat with an email makes a customer, maybe a ticket.
  STARTS_PER_TENANT        200 / min: more than any team answers; it also bounds the tickets
                           the unanswered-chat watcher makes of chats nobody took.
Contact details (`contact` frame, and a transcript's first email):
  EMAIL_CHANGES_PER_CONVERSATION  3 / day: an email given, then corrected twice. Each may get a
                           transcript, so this bounds where one chat's mail can go.
  CONTACTS_PER_VISITOR     10 / hour, CONTACTS_PER_ADDRESS 30 / hour, CONTACTS_PER_TENANT
                           300 / min: a visitor leaves a name and an email once or twice.
Transcripts (`transcript` frame; they go only to the chat's own email):
  TRANSCRIPTS_PER_CONVERSATION  3 / hour: asked once, perhaps again after more messages.
  TRANSCRIPTS_PER_VISITOR  5 / hour, TRANSCRIPTS_PER_ADDRESS 10 / hour: mail in the tenant's
                           name with a stranger's text must stay rare.
  TRANSCRIPTS_PER_TENANT   100 / min: the tenant's (and our) mail reputation.
Missed searches recorded (`record=1`, the search page); beyond, the search answers, unrecorded:
  MISSED_SEARCHES_PER_ADDRESS  20 / hour: more is a script filling the admin's list.
  MISSED_SEARCHES_PER_TENANT   2000 / hour: a popular help center's real misses, with room.
Article feedback ("was this helpful?"):
  VOTES_PER_ARTICLE        1 / day per address and article: one opinion; a repeat is answered
                           as usual and not counted.
  FEEDBACK_PER_ADDRESS     30 / hour, then 429: a reader votes on a few articles.
  FEEDBACK_PER_TENANT      600 / min, then 429.
Deflections (`POST /api/forms/{id}/deflections`), 429 beyond:
  DEFLECTIONS_PER_ADDRESS  60 / hour: a form visitor opens a few suggested articles.
  DEFLECTIONS_PER_TENANT   600 / min.
Widget sign-ins (`POST /widget/identify`, each a signature check and maybe a session), 429 beyond:
  IDENTIFY_PER_ADDRESS     60 / min: a page identifies once per load and again before the token
                           expires; a script trying tokens soon meets it.

Socket frames that meet a limit get an `error` frame with code `rate_limited`, the frame's
`client_id` and `retry_after` (seconds), and nothing is stored.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import time
from collections import deque
from dataclasses import dataclass

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from portal.core.contract import Tenant
from portal.i18n import ngettext
from portal.templating import render

MAX_KEYS = 50_000
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0


class RateLimiter:
    """At most `limit` hits per `window` seconds for each key; at most `max_keys` keys."""

    def __init__(self, limit: int, window: float, max_keys: int = MAX_KEYS) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        # key -> times of its last `limit` hits in the window, oldest first; the dict is ordered
        # by last hit. (A deque: a tenant may allow many thousands a minute, and each hit drops
        # the hits gone out of the window from the front, where a list would move all the rest.)
        self._hits: dict[str, deque[float]] = {}

    def wait(self, key: str, now: float | None = None) -> float:
        """0 when a hit would be allowed now, else the seconds until one is; records nothing."""
        now = time.monotonic() if now is None else now
        hits = self._hits.get(key)
        if not hits:
            return 0.0
        expired = now - self.window
        while hits and hits[0] <= expired:
            hits.popleft()
        if len(hits) < self.limit:
            return 0.0
        return hits[-self.limit] + self.window - now

    def record(self, key: str, now: float | None = None) -> None:
        """Count a hit, whether or not it was allowed."""
        now = time.monotonic() if now is None else now
        hits = self._hits.pop(key, None)  # re-inserted last: the dict stays in order of use
        if hits is None:
            # Older hits than the last `limit` never decide a wait.
            hits = deque(maxlen=self.limit)
            if len(self._hits) >= self.max_keys:
                self._prune(now)
        hits.append(now)
        self._hits[key] = hits

    def refund(self, key: str) -> None:
        """Take back the latest hit of `key`: what it counted turned out not to need counting."""
        hits = self._hits.get(key)
        if hits:
            hits.pop()

    def hit(self, key: str, now: float | None = None) -> float:
        """Record a hit; 0 when allowed, else the seconds until the next one is."""
        now = time.monotonic() if now is None else now
        wait = self.wait(key, now)
        if not wait:
            self.record(key, now)
        return wait

    def __len__(self) -> int:
        return len(self._hits)

    def _prune(self, now: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
            del self._hits[key]
        # Still full: forget the least recently hit keys (a tenant's key is never among them).
        for key in list(self._hits)[: max(0, len(self._hits) - self.max_keys * 9 // 10)]:
            del self._hits[key]


@dataclass(frozen=True)
class Rule:
    """At most `limit` hits per `window` seconds for each key; `setting` lets a tenant change it.

    `what` says in English what was counted, for the messages of refused socket frames."""

    name: str
    limit: int
    window: float
    what: str
    setting: str = ""

    def limit_for(self, tenant: Tenant) -> int:
        if not self.setting:
            return self.limit
        try:
            value = int(tenant.settings.get(self.setting, self.limit))
        except (TypeError, ValueError):
            return self.limit
        return value if value > 0 else self.limit


SUBMISSIONS_PER_ADDRESS = Rule(
    "submissions/address", 10, MINUTE, "requests from here", "form_ip_limit_per_minute"
)
SUBMISSIONS_PER_TENANT = Rule(
    "submissions/tenant", 300, MINUTE, "requests to this help desk", "form_tenant_limit_per_minute"
)
TOKENS_PER_ADDRESS = Rule("tokens/address", 60, HOUR, "new visitors from here")
TOKENS_PER_TENANT = Rule("tokens/tenant", 1200, MINUTE, "new visitors")
UPLOADS_PER_VISITOR = Rule("uploads/visitor", 20, 10 * MINUTE, "files sent")
UPLOADS_PER_ADDRESS = Rule("uploads/address", 100, HOUR, "files sent from here")
UPLOADS_PER_TENANT = Rule("uploads/tenant", 300, MINUTE, "files sent to this help desk")
STARTS_PER_VISITOR = Rule("starts/visitor", 5, 10 * MINUTE, "chats started")
STARTS_PER_ADDRESS = Rule("starts/address", 10, HOUR, "chats started from here")
STARTS_PER_TENANT = Rule("starts/tenant", 200, MINUTE, "chats started with this help desk")
EMAIL_CHANGES_PER_CONVERSATION = Rule(
    "email-changes/conversation", 3, DAY, "changes of this chat's email address"
)
CONTACTS_PER_VISITOR = Rule("contacts/visitor", 10, HOUR, "changes of contact details")
CONTACTS_PER_ADDRESS = Rule("contacts/address", 30, HOUR, "changes of contact details from here")
CONTACTS_PER_TENANT = Rule("contacts/tenant", 300, MINUTE, "changes of contact details")
TRANSCRIPTS_PER_CONVERSATION = Rule("transcripts/conversation", 3, HOUR, "transcripts of this chat")
TRANSCRIPTS_PER_VISITOR = Rule("transcripts/visitor", 5, HOUR, "transcripts asked for")
TRANSCRIPTS_PER_ADDRESS = Rule("transcripts/address", 10, HOUR, "transcripts asked for from here")
TRANSCRIPTS_PER_TENANT = Rule("transcripts/tenant", 100, MINUTE, "transcripts asked for")
MISSED_SEARCHES_PER_ADDRESS = Rule("missed-searches/address", 20, HOUR, "searches recorded")
MISSED_SEARCHES_PER_TENANT = Rule("missed-searches/tenant", 2000, HOUR, "searches recorded")
VOTES_PER_ARTICLE = Rule("votes/article", 1, DAY, "votes on this article")
FEEDBACK_PER_ADDRESS = Rule("feedback/address", 30, HOUR, "votes from here")
FEEDBACK_PER_TENANT = Rule("feedback/tenant", 600, MINUTE, "votes")
DEFLECTIONS_PER_ADDRESS = Rule("deflections/address", 60, HOUR, "suggestions opened from here")
DEFLECTIONS_PER_TENANT = Rule("deflections/tenant", 600, MINUTE, "suggestions opened")
IDENTIFY_PER_ADDRESS = Rule("identify/address", 60, MINUTE, "sign-ins from here")

Check = tuple[Rule, str]  # a rule and the key it counts under: an address, a visitor id, ...


@dataclass(frozen=True)
class Refused:
    """A hit a rule did not allow, and how long until it would."""

    rule: Rule
    wait: float

    @property
    def retry_after(self) -> int:
        """Whole seconds, at least 1: what `Retry-After` and `retry_after` say."""
        return max(1, math.ceil(self.wait))

    @property
    def message(self) -> str:
        """In English, for socket frames (which, like the JSON APIs, speak English)."""
        return f"Too many {self.rule.what}; try again in {self.retry_after} seconds."


class RateLimits:
    """The rules' counts for one app: one RateLimiter per (limit, window), keys name the rule."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self.max_keys = max_keys
        self._limiters: dict[tuple[int, float], RateLimiter] = {}

    def _limiter(self, limit: int, window: float) -> RateLimiter:
        limiter = self._limiters.get((limit, window))
        if limiter is None:
            limiter = self._limiters[(limit, window)] = RateLimiter(limit, window, self.max_keys)
        return limiter

    def check(self, tenant: Tenant, *checks: Check) -> Refused | None:
        """Count one hit for every (rule, key), or for none when any rule is used up.

        Returns None when all allowed it, else the refusal with the longest wait."""
        now = time.monotonic()
        counted = []
        refused: Refused | None = None
        for rule, key in checks:
            limiter = self._limiter(rule.limit_for(tenant), rule.window)
            full_key = f"{rule.name}:{tenant.id}:{key}"
            wait = limiter.wait(full_key, now)
            if wait and (refused is None or wait > refused.wait):
                refused = Refused(rule, wait)
            counted.append((limiter, full_key))
        if refused is None:
            for limiter, full_key in counted:
                limiter.record(full_key, now)
        return refused


def client_ip(connection: HTTPConnection) -> str:
    """The client's address as limits count it: IPv4 as is, IPv6 by its /64 network.

    uvicorn has already put the address from X-Forwarded-For of trusted proxies here."""
    return _limit_key(connection.client.host if connection.client else "unknown")


@functools.lru_cache(maxsize=4096)
def _limit_key(host: str) -> str:
    """(Parsing an address is most of a rate-limit check: a busy client is parsed once.)"""
    try:
        address = ipaddress.ip_address(host)
        if not isinstance(address, ipaddress.IPv6Address):
            return host
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network((address.packed, 64), strict=False))
    except ValueError:  # not an address (a test client's name, a Unix socket)
        return host


def wait_message(seconds: int) -> str:
    """What a person reads in a 429, in the page's language."""
    return ngettext(
        "Too many requests were sent from here. Wait %(num)d second, then try again.",
        "Too many requests were sent from here. Wait %(num)d seconds, then try again.",
        seconds,
    ) % {"num": seconds}


def too_many(
    request: Request,
    refused: Refused,
    *,
    page: bool = False,
    headers: dict[str, str] | None = None,
) -> Response:
    """The 429 answer: JSON `{error, retry_after}`, or with `page` the "too many requests" page
    (a person reads when to try again, in the request's language)."""
    seconds = refused.retry_after
    message = wait_message(seconds)
    headers = (headers or {}) | {"Retry-After": str(seconds), "Cache-Control": "no-store"}
    if page:
        return render(
            request,
            "forms/limited.html",
            {"message": message, "embed": False},
            status_code=429,
            headers=headers,
        )
    return JSONResponse(
        {"error": message, "retry_after": seconds}, status_code=429, headers=headers
    )

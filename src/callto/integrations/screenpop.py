"""Screen pop: the URL a CTI client opens when a call rings or is answered (a CRM search, say).

A company-wide template (administrators) and a per-user one (which, when set, wins); placeholders are
``{e164}``, ``{number}``, ``{name}`` and ``{call_id}``, each URL-encoded when filled in. Only http(s)
templates are accepted, so a filled-in value can never turn the URL into script.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from callto.dialer.numbers import InvalidNumber, normalize
from callto.dialer.service import DialerService
from callto.directory.service import DirectoryService
from callto.integrations.errors import InvalidScreenPop

COMPANY_KEY = "integrations.screen_pop"
USER_KEY = "integrations.screen_pop.user.{user_id}"
PLACEHOLDERS = ("e164", "number", "name", "call_id")
_FIELD = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class ScreenPop:
    url_template: str = ""
    on: str = "ringing"  # or "answered"
    enabled: bool = True

    def public(self, source: str) -> dict[str, Any]:
        return {"url_template": self.url_template, "on": self.on, "enabled": self.enabled, "source": source}


def check_template(template: str) -> str:
    template = template.strip()
    if not template:
        return ""
    if not template.lower().startswith(("http://", "https://")):
        raise InvalidScreenPop("the address must start with http:// or https://", details={"field": "url_template"})
    unknown = sorted({f for f in _FIELD.findall(template) if f not in PLACEHOLDERS})
    if unknown:
        raise InvalidScreenPop(
            f"unknown placeholders: {', '.join('{' + u + '}' for u in unknown)}",
            details={"field": "url_template", "known": list(PLACEHOLDERS)},
        )
    return template


def fill(template: str, values: dict[str, str]) -> str:
    return _FIELD.sub(lambda m: quote(values.get(m.group(1), ""), safe=""), template)


class ScreenPopService:
    def __init__(self, directory: DirectoryService, dialer: DialerService | None) -> None:
        self.directory = directory
        self.dialer = dialer

    @staticmethod
    def _load(raw: Any) -> ScreenPop | None:
        if not isinstance(raw, dict):
            return None
        return ScreenPop(
            str(raw.get("url_template", "")), str(raw.get("on", "ringing")), bool(raw.get("enabled", True))
        )

    def company(self) -> ScreenPop:
        return self._load(self.directory.get_setting(COMPANY_KEY)) or ScreenPop()

    def own(self, user_id: int) -> ScreenPop | None:
        return self._load(self.directory.get_setting(USER_KEY.format(user_id=user_id)))

    def effective(self, user_id: int) -> tuple[ScreenPop, str]:
        own = self.own(user_id)
        if own is not None and own.url_template:
            return own, "user"
        company = self.company()
        # the user's choice of moment (and of switching it off) applies to the company's template too
        if own is not None:
            return ScreenPop(company.url_template, own.on, own.enabled and company.enabled), "company"
        return company, "company"

    def set_company(self, pop: ScreenPop) -> ScreenPop:
        pop = ScreenPop(check_template(pop.url_template), pop.on, pop.enabled)
        self.directory.put_setting(COMPANY_KEY, pop.public("company"))
        return pop

    def set_own(self, user_id: int, pop: ScreenPop) -> ScreenPop:
        pop = ScreenPop(check_template(pop.url_template), pop.on, pop.enabled)
        self.directory.put_setting(USER_KEY.format(user_id=user_id), pop.public("user"))
        return pop

    def url(self, user_id: int, number: str, name: str, call_id: str) -> tuple[str | None, ScreenPop]:
        pop, _ = self.effective(user_id)
        if not pop.enabled or not pop.url_template:
            return None, pop
        e164 = number
        if self.dialer is not None and number:
            try:
                parsed = normalize(number, self.dialer.dial_plan())
                e164 = parsed.e164 or parsed.dialed
            except InvalidNumber:
                pass  # an anonymous or odd caller id: the number as received
        return fill(pop.url_template, {"e164": e164, "number": number, "name": name, "call_id": call_id}), pop

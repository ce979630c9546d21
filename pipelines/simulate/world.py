"""The simulated firms, their employees and their customers.

Two firms share the archive (Vigil is multi-tenant): a broker-dealer with desks in New York, London,
Hong Kong, Singapore and Tokyo, and a smaller wealth manager in Hong Kong and Shanghai. Employees
belong to a desk (the sub-organisation) and to groups such as ``advisors`` or ``traders`` that DLP
rules can be scoped to. Customers ("contacts") belong to one advisor and use the channels that fit
where they live: WeChat for mainland Chinese clients, LINE for Japanese ones, WhatsApp for many
others, SMS for nearly everyone.

Everything is drawn from a seeded RNG, so a seed names one world.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from functools import cached_property
from zoneinfo import ZoneInfo

import phonenumbers

from pipelines.record import Channel, Party, Role
from pipelines.simulate import names
from pipelines.simulate.names import Name


@dataclass(frozen=True, slots=True)
class SubOrg:
    id: str
    city: str
    country: str  # ISO 3166 alpha-2, drives phone numbers
    tz: ZoneInfo


@dataclass(frozen=True, slots=True)
class Org:
    id: str
    name: str  # what customers see in auto-messages
    sub_orgs: tuple[SubOrg, ...]
    share: float  # of employees and contacts
    #: WeChat phone-number validation: desks (sub-org ids) whose contacts must validate; "*" = all
    wechat_validation: frozenset[str]
    #: share of WeChat contacts who first talk to the routing bot
    wechat_bot_share: float


def _sub(id_: str, city: str, country: str, tz: str) -> SubOrg:
    return SubOrg(id_, city, country, ZoneInfo(tz))


ORGS: tuple[Org, ...] = (
    Org(
        "meridian",
        "Meridian Harbour Capital",
        (
            _sub("new-york", "New York", "US", "America/New_York"),
            _sub("london", "London", "GB", "Europe/London"),
            _sub("hong-kong", "Hong Kong", "HK", "Asia/Hong_Kong"),
            _sub("singapore", "Singapore", "SG", "Asia/Singapore"),
            _sub("tokyo", "Tokyo", "JP", "Asia/Tokyo"),
        ),
        0.72,
        frozenset({"hong-kong"}),
        0.3,
    ),
    Org(
        "kestrel",
        "Kestrel Bay Wealth",
        (
            _sub("hong-kong", "Hong Kong", "HK", "Asia/Hong_Kong"),
            _sub("shanghai", "Shanghai", "CN", "Asia/Shanghai"),
        ),
        0.28,
        frozenset({"*"}),
        0.5,
    ),
)

GROUPS = (("advisors", 0.5), ("traders", 0.2), ("research", 0.15), ("client-service", 0.15))


@dataclass(frozen=True)
class Employee:
    id: str
    name: Name
    phone: str  # E.164 business number
    groups: tuple[str, ...]
    org: Org
    sub_org: SubOrg

    @cached_property
    def party(self) -> Party:
        return Party(
            id=self.id,
            name=self.name.display,
            role=Role.EMPLOYEE,
            handle=self.phone,
            groups=list(self.groups),
        )


@dataclass(slots=True)
class Contact:
    """A customer. Mutable only while the world is built (feature coverage is settled afterwards)."""

    id: str
    name: Name
    lang: str  # language the contact writes in on WeChat/LINE: en, zh, ja
    country: str
    phone: str
    org: Org
    advisor: Employee
    channels: set[Channel]
    wechat_openid: str
    line_id: str
    whatsapp_threads: int = 1
    whatsapp_group: tuple[Employee, ...] = ()  # colleagues in a group conversation, if any
    wechat_group: tuple[Employee, ...] = ()
    wechat_validation: bool = False
    wechat_returning: bool = False  # validated on an earlier visit
    wechat_bot: bool = False
    line_regulated: bool = False
    _parties: dict[str, Party] = field(default_factory=dict)

    def party(self, channel: Channel | str) -> Party:
        """The contact as a party on ``channel`` (the handle differs: phone, openid or LINE id)."""
        key = str(channel)
        found = self._parties.get(key)
        if found is None:
            handle = {Channel.WECHAT: self.wechat_openid, Channel.LINE: self.line_id}.get(
                Channel(key), self.phone
            )
            found = Party(id=self.id, name=self.name.display, role=Role.CUSTOMER, handle=handle)
            self._parties[key] = found
        return found


@dataclass(frozen=True, slots=True)
class World:
    employees: tuple[Employee, ...]
    contacts: tuple[Contact, ...]
    #: internal Teams chats: pairs and desk groups of employees
    internal_chats: tuple[tuple[Employee, ...], ...]

    def colleagues(self, employee: Employee, *, same_sub_org: bool = False) -> list[Employee]:
        return [
            e
            for e in self.employees
            if e.org.id == employee.org.id
            and e.id != employee.id
            and (not same_sub_org or e.sub_org.id == employee.sub_org.id)
        ]


# ---------------------------------------------------------------------------------------------
# phone numbers and handles

_MOBILE_PREFIXES = {
    "US": (("212", "646", "917", "415", "312", "617"), 7),
    "GB": (("7",), 9),
    "DE": (("151", "160", "170", "176"), 8),
    "HK": (("5", "6", "9"), 7),
    "SG": (("8", "9"), 7),
    "JP": (("90", "80", "70"), 8),
    "CN": (("138", "139", "150", "186", "135"), 8),
}


def phone_number(rng: random.Random, country: str) -> phonenumbers.PhoneNumber:
    """A number that libphonenumber considers valid for ``country`` (so DLP detectors accept it)."""
    prefixes, length = _MOBILE_PREFIXES[country]
    while True:
        national = rng.choice(prefixes) + "".join(rng.choice(string.digits) for _ in range(length))
        parsed = phonenumbers.parse(national, country)
        if phonenumbers.is_valid_number(parsed):
            return parsed


def e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _openid(rng: random.Random) -> str:
    # Official-account openids are 28 characters starting with "o"
    alphabet = string.ascii_letters + string.digits + "-_"
    return "o" + "".join(rng.choice(alphabet) for _ in range(27))


def _line_id(rng: random.Random) -> str:
    return "U" + "".join(rng.choice("0123456789abcdef") for _ in range(32))


# ---------------------------------------------------------------------------------------------
# building


def _split(total: int, shares: list[float]) -> list[int]:
    """Largest-remainder split of ``total`` by ``shares``, every part at least 1 when possible."""
    raw = [total * s for s in shares]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)[: total - sum(counts)]:
        counts[i] += 1
    for i, c in enumerate(counts):
        if c == 0 and total >= len(counts):
            donor = counts.index(max(counts))
            counts[donor] -= 1
            counts[i] = 1
    return counts


def _employee_name(rng: random.Random, sub: SubOrg) -> Name:
    if sub.country in ("HK", "SG", "CN"):
        return names.chinese(rng, native=False) if rng.random() < 0.8 else names.latin(rng)
    if sub.country == "JP":
        return names.japanese(rng, native=False) if rng.random() < 0.85 else names.latin(rng)
    return names.latin(rng) if rng.random() < 0.85 else names.chinese(rng, native=False)


def build_employees(rng: random.Random, count: int) -> tuple[Employee, ...]:
    employees: list[Employee] = []
    for org, n in zip(ORGS, _split(count, [o.share for o in ORGS]), strict=True):
        for i in range(n):
            sub = org.sub_orgs[i % len(org.sub_orgs)]
            group = rng.choices([g for g, _ in GROUPS], weights=[w for _, w in GROUPS])[0]
            groups = (group, "supervisors") if i % 9 == 4 else (group,)
            employees.append(
                Employee(
                    id=f"{org.id}-e{i + 1:04d}",
                    name=_employee_name(rng, sub),
                    phone=e164(phone_number(rng, sub.country)),
                    groups=groups,
                    org=org,
                    sub_org=sub,
                )
            )
    return tuple(employees)


def _contact_style(rng: random.Random, sub: SubOrg) -> tuple[Name, str, str]:
    """(name, language, country) of a customer of a desk."""
    roll = rng.random()
    if sub.country == "CN" or (sub.country in ("HK", "SG") and roll < 0.45):
        country = "CN" if sub.country == "CN" or roll < 0.25 else sub.country
        native = country == "CN" or rng.random() < 0.3
        return names.chinese(rng, native=native), "zh" if native else "en", country
    if sub.country in ("HK", "SG"):
        return names.chinese(rng, native=False), "en", sub.country
    if sub.country == "JP":
        if roll < 0.8:
            native = rng.random() < 0.7
            return names.japanese(rng, native=native), "ja" if native else "en", "JP"
        return names.latin(rng), "en", "JP" if roll < 0.9 else "US"
    if sub.country == "GB":
        return names.latin(rng), "en", "GB" if roll < 0.7 else "DE"
    if roll < 0.1:
        return names.chinese(rng, native=False), "en", "US"
    return names.latin(rng), "en", "US"


def _channels(rng: random.Random, name: Name, lang: str, country: str) -> set[Channel]:
    chosen = {Channel.SMS}
    if rng.random() < 0.25:
        chosen.add(Channel.MMS)
    if rng.random() < 0.35:
        chosen.add(Channel.VOICEMAIL)
    if rng.random() < 0.25:
        chosen.add(Channel.TEAMS)
    whatsapp = {"zh": 0.1, "ja": 0.2}.get(lang, 0.65 if country not in ("CN", "JP") else 0.3)
    if rng.random() < whatsapp:
        chosen.add(Channel.WHATSAPP)
    if rng.random() < (
        0.9 if lang == "zh" else 0.4 if name.script == "chinese" or country in ("CN", "HK", "SG") else 0
    ):
        chosen.add(Channel.WECHAT)
    if rng.random() < (0.85 if country == "JP" else 0):
        chosen.add(Channel.LINE)
    return chosen


def build_world(seed: int, employees: int, contacts: int) -> World:
    rng = random.Random(f"vigil-world:{seed}")
    staff = build_employees(rng, employees)
    by_org = {org.id: [e for e in staff if e.org.id == org.id] for org in ORGS}
    people: list[Contact] = []
    orgs_present = [o for o in ORGS if by_org[o.id]]
    per_org = _split(contacts, [o.share for o in orgs_present])
    for org, n in zip(orgs_present, per_org, strict=True):
        team = by_org[org.id]
        for i in range(n):
            advisor = team[i % len(team)]
            name, lang, country = _contact_style(rng, advisor.sub_org)
            channels = _channels(rng, name, lang, country)
            contact = Contact(
                id=f"{org.id}-c{i + 1:05d}",
                name=name,
                lang=lang,
                country=country,
                phone=e164(phone_number(rng, country)),
                org=org,
                advisor=advisor,
                channels=channels,
                wechat_openid=_openid(rng),
                line_id=_line_id(rng),
            )
            _features(rng, contact, team)
            people.append(contact)
    _ensure_coverage(people, by_org)
    return World(staff, tuple(people), _internal_chats(rng, staff))


def _features(rng: random.Random, contact: Contact, team: list[Employee]) -> None:
    advisor = contact.advisor
    colleagues = [e for e in team if e.id != advisor.id]
    desk = [e for e in colleagues if e.sub_org.id == advisor.sub_org.id]
    contact.whatsapp_threads = 2 if rng.random() < 0.3 else 1
    if colleagues and rng.random() < 0.25:
        contact.whatsapp_group = (advisor, *rng.sample(colleagues, min(len(colleagues), rng.choice((1, 2)))))
    if desk and rng.random() < 0.2:
        contact.wechat_group = (advisor, rng.choice(desk))
    rules = contact.org.wechat_validation
    contact.wechat_validation = "*" in rules or advisor.sub_org.id in rules
    contact.wechat_returning = contact.wechat_validation and rng.random() < 0.3
    contact.wechat_bot = rng.random() < contact.org.wechat_bot_share
    contact.line_regulated = rng.random() < 0.5


def _ensure_coverage(people: list[Contact], by_org: dict[str, list[Employee]]) -> None:
    """Small worlds (tests) still exercise every channel and rule: give the first contacts what's missing."""
    if not people:
        return
    for index, channel in enumerate(Channel):
        if not any(channel in c.channels for c in people):
            people[index % len(people)].channels.add(channel)
    wechat = [c for c in people if Channel.WECHAT in c.channels]
    if wechat and not any(c.wechat_validation for c in wechat):
        wechat[0].wechat_validation = True
    if wechat and not any(c.wechat_bot for c in wechat):
        wechat[-1].wechat_bot = True
    if len(wechat) > 1 and not any(c.wechat_returning for c in wechat):
        candidate = next((c for c in wechat if c.wechat_validation), wechat[0])
        candidate.wechat_validation = candidate.wechat_returning = True
    whatsapp = [c for c in people if Channel.WHATSAPP in c.channels]
    if whatsapp and not any(c.whatsapp_group for c in whatsapp):
        first = whatsapp[0]
        colleagues = [e for e in by_org[first.org.id] if e.id != first.advisor.id]
        if colleagues:
            first.whatsapp_group = (first.advisor, colleagues[0])
    line = [c for c in people if Channel.LINE in c.channels]
    if line and not any(c.line_regulated for c in line):
        line[0].line_regulated = True


def _internal_chats(rng: random.Random, staff: tuple[Employee, ...]) -> tuple[tuple[Employee, ...], ...]:
    chats: list[tuple[Employee, ...]] = []
    for i, employee in enumerate(staff):
        peers = [e for e in staff[i + 1 :] if e.org.id == employee.org.id]
        for peer in rng.sample(peers, min(len(peers), rng.choice((1, 1, 2)))):
            chats.append((employee, peer))
    for org in ORGS:
        for sub in org.sub_orgs:
            desk = tuple(e for e in staff if e.org.id == org.id and e.sub_org.id == sub.id)
            if len(desk) >= 3:
                chats.append(desk[:8])
    return tuple(chats)

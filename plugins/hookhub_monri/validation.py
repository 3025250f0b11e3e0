"""Request checks from Monri's API documents, applied before anything is sent."""

from __future__ import annotations

import re
from typing import Any

from hookhub import ValidationError

# ISO 3166-1 alpha-2, officially assigned codes.
COUNTRIES = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW
BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI
FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN
IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME
MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF
PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE
YT ZA ZM ZW
""".split())

_CURRENCY = re.compile(r"^[A-Z]{3}$")


def text(field: str, value: Any, low: int, high: int) -> str:
    """A string of ``low`` to ``high`` characters."""
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    if not low <= len(value) <= high:
        raise ValidationError(field, f"must be {low} to {high} characters long, not {len(value)}")
    return value


def amount(field: str, value: Any) -> int:
    """An int in minor units with 1 to 11 digits."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, "must be an int in minor units (10.24 is sent as 1024)")
    if not 0 < value < 10**11:
        raise ValidationError(field, "must be a positive integer of at most 11 digits")
    return value


def currency(field: str, value: Any) -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise ValidationError(field, "must be a three-letter upper-case ISO 4217 code")
    return value


def choice(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValidationError(field, f"must be one of {', '.join(allowed)}")
    return value


def country(field: str, value: Any) -> str:
    if not isinstance(value, str) or value not in COUNTRIES:
        raise ValidationError(field, "must be an ISO 3166-1 alpha-2 country code such as BA or US")
    return value


def identifier(field: str, value: Any, high: int = 100) -> str:
    """An id that goes into a URL path."""
    return text(field, value, 1, high)


def page(field: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(field, "must be a non-negative int")
    return value

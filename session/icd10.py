"""ICD-10-CM checks for the diagnoses that justify mechanical traction.

The data is a curated subset (``configs/icd10/spine.toml``), not the full code set, so the answer
for a spine code it does not list is "unverified", never "valid". Validity depends on the date of
service: M51.36 was billable until 2024-09-30 and is a header after it.
"""

from __future__ import annotations

import enum
import re
import tomllib
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from devices.configfiles import config_file
from devices.errors import ConfigError

_FORMAT = re.compile(r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")
REGIONS = ("cervical", "thoracic", "lumbar")


class CodeStatus(enum.StrEnum):
    BILLABLE = "billable"
    INVALID = "invalid"  # not an ICD-10-CM code shape, or not yet effective on the date
    DELETED = "deleted"
    HEADER = "header"
    UNVERIFIED = "unverified"  # a spine code the curated subset does not list
    NOT_SPINE = "not_spine"


@dataclass(frozen=True)
class CodeCheck:
    """The verdict on one code for one date of service, with what to do about it."""

    code: str
    status: CodeStatus
    message: str
    title: str = ""
    region: str = ""
    replaced_by: tuple[str, ...] = ()

    @property
    def supports_traction(self) -> bool:
        return self.status in (CodeStatus.BILLABLE, CodeStatus.UNVERIFIED)


@dataclass(frozen=True)
class _Billable:
    title: str
    region: str
    billable_from: date | None
    billable_until: date | None


def normalize(code: str) -> str:
    """Upper-case, trimmed, with the dot after the category (``m5416`` -> ``M54.16``)."""
    text = code.strip().upper()
    if "." not in text and len(text) > 3:
        text = f"{text[:3]}.{text[3:]}"
    return text


def is_well_formed(code: str) -> bool:
    """The ICD-10-CM shape: a letter, a digit, a character, then up to four after a dot."""
    return bool(_FORMAT.match(code))


class Icd10Catalog:
    """Curated ICD-10-CM knowledge for spinal traction, loaded from a TOML file."""

    def __init__(self, data: dict[str, Any], source: str) -> None:
        self.source = source
        self._billable: dict[str, _Billable] = {}
        self._headers: dict[str, tuple[str, date | None, tuple[str, ...]]] = {}
        self._deleted: dict[str, tuple[date, tuple[str, ...]]] = {}
        prefixes = data.get("spine_prefixes")
        if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
            raise ConfigError(f"{source}: spine_prefixes", "must be a list of code prefixes")
        self.spine_prefixes = tuple(prefixes)
        for i, row in enumerate(data.get("codes", [])):
            where = f"{source}: codes[{i}]"
            code = self._code(row, where)
            region = _str(row, "region", where)
            if region not in REGIONS:
                raise ConfigError(f"{where}.region", f"{region!r} is not one of {REGIONS}")
            self._billable[code] = _Billable(
                title=_str(row, "title", where),
                region=region,
                billable_from=_opt_date(row, "billable_from", where),
                billable_until=_opt_date(row, "billable_until", where),
            )
        for i, row in enumerate(data.get("headers", [])):
            where = f"{source}: headers[{i}]"
            self._headers[self._code(row, where)] = (
                _str(row, "title", where),
                _opt_date(row, "header_from", where),
                _codes(row, "children", where),
            )
        for i, row in enumerate(data.get("deleted", [])):
            where = f"{source}: deleted[{i}]"
            deleted_on = _opt_date(row, "deleted_on", where)
            if deleted_on is None:
                raise ConfigError(f"{where}.deleted_on", "is required (a TOML date)")
            self._deleted[self._code(row, where)] = (deleted_on, _codes(row, "replaced_by", where))

    @staticmethod
    def _code(row: Any, where: str) -> str:
        if not isinstance(row, dict):
            raise ConfigError(where, "must be a table")
        code = normalize(_str(row, "code", where))
        if not _FORMAT.match(code):
            raise ConfigError(f"{where}.code", f"{code!r} is not an ICD-10-CM code")
        return code

    def is_spine(self, code: str) -> bool:
        return normalize(code).startswith(self.spine_prefixes)

    def check(self, code: str, on: date) -> CodeCheck:
        """Judge ``code`` for a service on ``on``."""
        norm = normalize(code)
        if not _FORMAT.match(norm):
            return CodeCheck(
                norm,
                CodeStatus.INVALID,
                f"{code!r} is not an ICD-10-CM code (a letter, two characters, then up to four after a dot)",
            )
        deleted = self._deleted.get(norm)
        if deleted and on >= deleted[0]:
            return CodeCheck(
                norm,
                CodeStatus.DELETED,
                f"{norm} is not billable on or after {deleted[0]}; use one of {', '.join(deleted[1])}",
                replaced_by=deleted[1],
            )
        header = self._headers.get(norm)
        if header and (header[1] is None or on >= header[1]):
            use = f": use one of {', '.join(header[2])}" if header[2] else ""
            return CodeCheck(
                norm,
                CodeStatus.HEADER,
                f"{norm} ({header[0]}) is a category header, not billable; add the further characters{use}",
                title=header[0],
                replaced_by=header[2],
            )
        known = self._billable.get(norm)
        if known is not None:
            if known.billable_from and on < known.billable_from:
                return CodeCheck(
                    norm,
                    CodeStatus.INVALID,
                    f"{norm} takes effect on {known.billable_from}, after the date of service {on}",
                    known.title,
                    known.region,
                )
            if known.billable_until and on > known.billable_until:
                return CodeCheck(
                    norm,
                    CodeStatus.DELETED,
                    f"{norm} stopped being billable after {known.billable_until}",
                    known.title,
                    known.region,
                )
            return CodeCheck(
                norm, CodeStatus.BILLABLE, f"{norm}: {known.title}", known.title, known.region
            )
        if self.is_spine(norm):
            return CodeCheck(
                norm,
                CodeStatus.UNVERIFIED,
                f"{norm} is a spine code outside the curated list ({self.source}); confirm it is billable in the current ICD-10-CM tabular list",
            )
        return CodeCheck(
            norm,
            CodeStatus.NOT_SPINE,
            f"{norm} is not a spine diagnosis and does not support spinal traction",
        )


def _str(row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key}", f"must be a non-empty string, got {value!r}")
    return value


def _codes(row: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = row.get(key, [])
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise ConfigError(f"{where}.{key}", f"must be a list of codes, got {value!r}")
    return tuple(normalize(c) for c in value)


def _opt_date(row: dict[str, Any], key: str, where: str) -> date | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, date):
        raise ConfigError(f"{where}.{key}", f"must be a TOML date like 2024-10-01, got {value!r}")
    return value


def load_catalog(text: str, source: str) -> Icd10Catalog:
    """Parse a catalog from TOML text; errors name ``source`` and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, f"not valid TOML: {exc}") from None
    return Icd10Catalog(data, source)


@lru_cache(maxsize=1)
def default_catalog() -> Icd10Catalog:
    """The shipped curated subset, ``configs/icd10/spine.toml``."""
    return load_catalog(
        config_file("icd10", "spine.toml").read_text(encoding="utf-8"), "configs/icd10/spine.toml"
    )

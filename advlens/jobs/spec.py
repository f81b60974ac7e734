"""The settings of a job kind as a dataclass, read from and written to the run store's JSON the same way
for every kind: a mapping, no unknown names (or, for kinds whose old rows carry extra columns, unknown
names dropped), every required setting present, each failure one line in the kind's own error."""

from __future__ import annotations

from dataclasses import asdict, fields


class JobSpec:
    """Base of a job's settings dataclass; subclasses set ``what``, ``error`` and, if needed, ``lenient``."""

    what = "job"  # named in messages: "a certification's settings must be ..."
    error: type[Exception] = ValueError
    lenient = False  # drop unknown names instead of refusing them (rows migrated from older stores)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        if not isinstance(data, dict):
            raise cls.error(f"the {cls.what} settings must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown and not cls.lenient:
            raise cls.error(f"unknown {cls.what} setting(s): {', '.join(map(str, unknown))[:300]}")
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise cls.error(f"missing {cls.what} setting: {exc}") from None

"""What ``optinv verify`` found: one :class:`PropertyResult` per property and backend, in a :class:`VerifyReport`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class PropertyResult:
    """Outcome of one property on one backend (``backend`` is ``"-"`` for backend-free properties)."""

    property: str
    backend: str
    status: str  # "PASS", "FAIL" or "SKIP"
    examples: int
    message: str
    counterexample: dict | None = None
    seconds: float = 0.0

    def line(self) -> str:
        what = f"{self.property} [{self.backend}]" if self.backend != "-" else self.property
        if self.status == "SKIP" or (self.examples == 0 and self.counterexample is None):
            count = "-"
        elif self.status == "FAIL" and self.counterexample is not None:
            count = f"failed on example {self.examples}"
        else:
            count = f"{self.examples} example{'s' if self.examples != 1 else ''}"
        text = f"{self.status:<4}  {what:<26} {count:<22} {self.message}"
        if self.status == "FAIL" and self.counterexample:
            text += "\n      shrunk counterexample: " + _format_counterexample(self.counterexample)
        return text


@dataclass
class VerifyReport:
    """Everything ``optinv verify`` found; :meth:`to_json` is the ``--json`` file."""

    module: str
    path: str
    signature: str
    K: int
    seed: int
    max_examples: int
    results: list[PropertyResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when nothing failed (and something passed); SKIPs are not failures."""
        return not self.failed and any(r.status == "PASS" for r in self.results)

    @property
    def failed(self) -> list[PropertyResult]:
        return [r for r in self.results if r.status == "FAIL"]

    def header(self) -> str:
        return (f"optinv verify {self.module} ({self.path}): {self.K} invariants of {self.signature}; "
                f"seed {self.seed}, up to {self.max_examples} examples per property")

    def summary(self) -> str:
        counts = {s: sum(r.status == s for r in self.results) for s in ("PASS", "FAIL", "SKIP")}
        verdict = "OK" if self.ok else "FAILED: " + ", ".join(sorted({f"{r.property}" for r in self.failed}))
        return (f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped "
                f"in {self.seconds:.1f}s: {verdict}")

    def report(self) -> str:
        return "\n".join([self.header(), *(r.line() for r in self.results), self.summary()])

    def to_dict(self) -> dict:
        return asdict(self) | {"ok": self.ok}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n"


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _format_counterexample(ce: dict) -> str:
    parts = []
    for key, value in ce.items():
        if isinstance(value, np.ndarray):
            value = json.dumps(value.tolist())
        parts.append(f"{key}={value}")
    return "; ".join(parts)

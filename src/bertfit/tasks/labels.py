"""Label names: normalised, ordered deterministically, and kept with the model."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


def normalize_label(value: object) -> str | None:
    """One label value as a string name; ``None`` for a missing label."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    if hasattr(value, "item"):  # numpy scalars
        return normalize_label(value.item())
    text = str(value).strip()
    return text or None


def raw_label(value: object) -> str | tuple[str, ...] | None:
    """A label cell as a name, a tuple of names (list-valued cells), or ``None`` when missing."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(name for name in (normalize_label(v) for v in value) if name is not None)
    return normalize_label(value)


def _order_key(name: str) -> tuple[int, float, str]:
    # Integer-like names sort numerically (2 before 10); other names alphabetically after them.
    try:
        return (0, float(int(name)), name)
    except ValueError:
        return (1, 0.0, name)


@dataclass(frozen=True)
class LabelSet:
    """The classes a model predicts, in id order."""

    names: tuple[str, ...]

    @classmethod
    def from_values(cls, values: Iterable[str], display: dict[str, str] | None = None) -> LabelSet:
        """Order raw label values deterministically, then apply optional display names."""
        ordered = sorted(set(values), key=_order_key)
        display = display or {}
        return cls(tuple(display.get(v, v) for v in ordered))

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    def encode(self, labels: Sequence[str]) -> list[int]:
        index = self.label2id
        return [index[name] for name in labels]

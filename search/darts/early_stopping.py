"""Early stopping of a differentiable search (DARTS+ style), configurable.

Two rules, both looking at the genotype derived after each architecture epoch:
- collapse: the normal cell holds `max_parameter_free` or more parameter-free operations
  (skip connections and pools take over when a search runs too long);
- stable: the genotype has not changed for `patience` epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from zoo.models.ubnas import PARAMETER_FREE


@dataclass
class EarlyStopping:
    max_parameter_free: Optional[int] = 2
    patience: Optional[int] = 3
    history: list = field(default_factory=list)

    def update(self, genotype: dict) -> Optional[str]:
        """Record an epoch's genotype; return why to stop, or None to go on."""
        self.history.append(genotype)
        free = sum(op in PARAMETER_FREE for op, _ in genotype["normal"])
        if self.max_parameter_free is not None and free >= self.max_parameter_free:
            return f"normal cell has {free} parameter-free operations"
        if self.patience is not None and len(self.history) > self.patience:
            recent = self.history[-(self.patience + 1):]
            if all(g == recent[0] for g in recent):
                return f"genotype unchanged for {self.patience} epochs"
        return None

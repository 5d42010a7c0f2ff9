"""No DP noise: stores send their updates (in clear, or masked with --secagg)."""

from __future__ import annotations

from fedrec.config import TrainConfig
from fedrec.privacy.modes.base import PrivacyMode


class Off(PrivacyMode):
    name = "off"
    summary = "no DP noise (--secagg still hides each store's update)"
    audit_name = "no DP"

    def check_centralised(self, train: TrainConfig) -> None:
        self.check_budget_options(train)

"""Every cross-field check of a federated run, in one call made before any process starts
once: `fedrec simulate` before Ray starts, or under `flwr run` the ServerApp before round 1.
The checks that need no data run first, before a raw log is anonymized or a run folder made;
the privacy mode's own are the mode's (fedrec.privacy.modes)."""

from __future__ import annotations

from fedrec.config import FederationConfig, TrainConfig
from fedrec.data import Interactions
from fedrec.federation.device_shards import check_device_shards
from fedrec.federation.drift import check_drift_correction
from fedrec.federation.secure_aggregation import check_secure_aggregation
from fedrec.models import create_model, model_class
from fedrec.models.registry import shares_every_parameter
from fedrec.privacy.modes import privacy_mode


def check_options(train: TrainConfig, federation: FederationConfig) -> None:
    """The checks that need no data: run before any file is read or written."""
    privacy_mode(train.dp).check(train, federation, every_parameter_shared=shares_every_parameter(train.model),
                                 uses_popularity_prior=model_class(train.model).uses_popularity_prior)
    check_drift_correction(train, federation)
    check_secure_aggregation(train, federation)
    check_device_shards(train, federation)


def check_run(train: TrainConfig, federation: FederationConfig, catalog: Interactions) -> None:
    """Refuse what cannot work, naming the fix; ``train`` and ``federation`` are resolved."""
    check_options(train, federation)
    # The model's own checks (vocabulary needs the DP prior, attributes need a catalog with them).
    model = create_model(train.model, train, n_users=0, n_items=catalog.n_items)
    model.use_item_attributes(catalog)

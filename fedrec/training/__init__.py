"""The one training loop: `fedrec train` runs it over all data, a Flower client over its part.

``fit_model`` trains any recommender on a split (plain, or private under --dp);
``train_local_epochs`` and ``private_round`` are a federated client's round.
"""

from fedrec.training.fitting import fit_model
from fedrec.training.local import private_round, train_local_epochs
from fedrec.training.loop import fit_with_early_stopping, run_epoch

__all__ = ["fit_model", "fit_with_early_stopping", "private_round", "run_epoch", "train_local_epochs"]

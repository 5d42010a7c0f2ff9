"""The one training loop: `fedrec train` runs it over all data, a Flower client over its part."""

from fedrec.training.loop import FitResult, fit_with_early_stopping, run_epoch

__all__ = ["FitResult", "fit_with_early_stopping", "run_epoch"]

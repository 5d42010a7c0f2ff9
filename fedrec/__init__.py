"""fedrec: privacy-preserving federated recommendation on Flower, PyTorch and Opacus."""

__version__ = "0.1.0"

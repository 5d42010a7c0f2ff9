"""Differential privacy: Opacus DP-SGD for the neural models, noisy counts for popularity,
the per-client privacy ledger and the privacy-budget report."""

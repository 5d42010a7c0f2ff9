"""The privacy ledger and the privacy-budget report."""

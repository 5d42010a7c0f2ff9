"""Benchmark-only (simulations/benchmark_noise_check.py): one check coordinate per share instead
of 20,000, the baseline the check's cost is measured against. On PYTHONPATH it reaches the CLI
process and its Ray workers; the library has no such switch. Said on stderr."""

import sys

from fedrec.privacy import noise_check

noise_check.CHECK_COORDINATES = 1
sys.stderr.write("BENCHMARK one check coordinate per share (the cost baseline)\n")

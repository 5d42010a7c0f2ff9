"""Benchmark-only (simulations/benchmark_noise_check.py): the number of check coordinates per
share from FEDREC_BENCH_CHECK_COORDINATES, so that both arms of the comparison (1 and the
library's 20,000) start their processes the same way. On PYTHONPATH it reaches the CLI process
and its Ray workers; the library has no such switch. Said on stderr."""

import os
import sys

from fedrec.privacy import noise_check

noise_check.CHECK_COORDINATES = int(os.environ["FEDREC_BENCH_CHECK_COORDINATES"])
sys.stderr.write(f"BENCHMARK {noise_check.CHECK_COORDINATES} check coordinates per share\n")

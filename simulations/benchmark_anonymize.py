"""How fast anonymization runs on a large raw log, and how much memory it takes.

    python simulations/benchmark_anonymize.py --rows 1000000 --out runs/bench-anonymize [--log PATH]
        [--generator synth|numpy] [--stores 10] [--k 5] [--repeats 3]

Builds a Parquet log of about ``--rows`` rows in the columns of a store chain's raw log (or
reads ``--log``), then anonymizes it to Parquet ``--repeats`` times, each run in its own
process so its peak RSS is its own. The log is kept in ``--out`` and reused by later runs
of the same size. Reports rows per second over the anonymization itself (the
``anonymize_file`` call, after the imports, which take ~2.7 s here whatever the log) and
over the whole process (interpreter, imports and all), the CPU seconds of the call
(steadier than wall time on a shared machine) and the peak RSS, sampled from outside the
process; prints a table and writes ``<out>/anonymize.json``. The goal (issue 15): at least
300k rows/s on 2 cores and at most 4 GB peak RSS for 10M rows.

``--generator synth`` (the default where fedrec.data.synth exists) replays Beauty histories
with invented customers; ``numpy`` draws a log of the same columns directly, which needs far
less memory to build at 10M rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_measured  # noqa: E402  (wall time and the process tree's peak RSS, sampled every 0.5 s)

BEAUTY_MEAN_LENGTH = 198_502 / 22_363  # rows per Beauty user: synth replays these histories


def numpy_log(rows: int, *, stores: int, seed: int = 0) -> pa.Table:
    """A raw log of the chain's columns: ~9 events per customer, one home store each,
    times increasing per customer, the whole log in time order (customers interleaved)."""
    rng = np.random.default_rng(seed)
    customers = max(stores, rows // 9)
    lengths = rng.multinomial(rows - customers, np.full(customers, 1 / customers)) + 1
    owner = np.repeat(np.arange(customers), lengths)
    start = rng.integers(0, 300 * 86_400, customers)
    gaps = rng.exponential(2 * 86_400, rows).astype(np.int64) + 60
    elapsed = np.cumsum(gaps)
    block_start = np.repeat(np.cumsum(lengths) - lengths, lengths)  # each row's customer's first row
    seconds = start[owner] + elapsed - elapsed[block_start]
    order = np.argsort(seconds, kind="stable")
    owner, seconds = owner[order], seconds[order]

    def pick(pool, n):
        return pa.array(pool).take(pa.array(rng.integers(0, len(pool), n)))

    def digits(values, width):
        return pc.utf8_lpad(pc.cast(pa.array(values), pa.string()), width, "0")

    first_names, last_names = pick(["Ann", "Ben", "Cleo", "Dev", "Eve", "Finn", "Gia", "Hal"], customers), pick(
        ["Smith", "Jones", "Patel", "Brown", "Khan", "Evans", "Wood", "Hill"], customers)
    number = digits(rng.integers(0, 100_000, customers), 5)
    home = rng.integers(0, stores, customers)
    people = {
        "customer_id": pc.binary_join_element_wise("C", digits(np.arange(customers), 7), ""),
        "loyalty_id": pc.binary_join_element_wise("LY", digits(rng.integers(0, 10**9, customers), 9), ""),
        "name": pc.binary_join_element_wise(first_names, last_names, " "),
        "email": pc.binary_join_element_wise(pc.utf8_lower(first_names), pc.utf8_lower(last_names), number,
                                             pick(["@mail.co.uk", "@outlook.com"], customers), ""),
        "phone": pc.binary_join_element_wise("07", digits(rng.integers(0, 10**3, customers), 3), " ",
                                             digits(rng.integers(0, 10**6, customers), 6), ""),
        "street_address": pc.binary_join_element_wise(pc.cast(pa.array(rng.integers(1, 300, customers)), pa.string()),
                                                      pick(["High Street", "Mill Lane", "Park Road"], customers), " "),
        "postcode": pc.binary_join_element_wise(pick([f"{a}{d}" for a in ("LS", "M", "BS", "SW", "EC") for d in range(1, 20)], customers),
                                                " ", pc.cast(pa.array(rng.integers(1, 10, customers)), pa.string()),
                                                pick(["AB", "XY", "HF", "QT"], customers), ""),
        "city": pick(["Leeds", "Manchester", "Bristol", "London"], customers),
        "birth_date": pc.cast(pa.array((np.datetime64("1940-01-01") + rng.integers(0, 60 * 365, customers)).astype("datetime64[D]")), pa.string()),
        "gender": pick(["female", "male", "non-binary"], customers),
        "skin_type": pick(["dry", "oily", "combination", "normal", "sensitive"], customers),
        "device_ip": pc.binary_join_element_wise(*[pc.cast(pa.array(rng.integers(1, 255, customers)), pa.string()) for _ in range(4)], "."),
        "opt_out": pa.array(rng.random(customers) < 0.02),
        "store_id": pc.binary_join_element_wise("S", digits(home, 2), ""),
        "region": pa.array([f"R{s % 3}" for s in range(stores)]).take(pa.array(home)),
    }
    rows_of = pa.array(owner)
    columns = {name: values.take(rows_of) for name, values in people.items()}
    items = rng.integers(0, 12_000, rows)
    notes = np.where(rng.random(rows) < 0.02, "Call me before delivery please.", "")
    log = {
        **{c: columns[c] for c in ("customer_id", "loyalty_id", "name", "email", "phone", "street_address", "postcode",
                                   "city", "birth_date", "gender", "skin_type", "device_ip", "opt_out", "store_id", "region")},
        "timestamp": pc.strftime(pa.array((seconds + 1_704_067_200).astype("datetime64[s]")), "%Y-%m-%dT%H:%M:%S"),
        "event_type": pick(["view", "cart", "purchase"], rows),
        "item_id": pa.array(items),
        "brand": pa.array([f"Brand{b}" for b in range(400)]).take(pa.array(items % 400)),
        "category": pa.array(["Skin Care", "Makeup", "Hair Care", "Fragrance"]).take(pa.array(items % 4)),
        "price": pa.array(np.round(items % 50 + 0.99, 2)),
        "order_note": pa.array(notes),
    }
    return pa.table(log)


def build_log(path: Path, rows: int, *, stores: int, generator: str) -> Path:
    if path.exists():
        print(f"reusing {path}", flush=True)
        return path
    started = time.perf_counter()
    if generator == "synth":
        from fedrec.data.synth import synthesize, write_synth

        write_synth(synthesize(stores=stores, users=max(stores, round(rows / BEAUTY_MEAN_LENGTH)), seed=0), path)
    else:
        pq.write_table(numpy_log(rows, stores=stores), path, row_group_size=1_000_000)
    print(f"built {path} ({pq.ParquetFile(path).metadata.num_rows} rows, {generator}) in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return path


def worker(log: Path, out: Path, k: int) -> dict:
    """One anonymization; imports (fedrec with torch, then presidio with spaCy) timed apart:
    they cost the same for any log."""
    started = time.perf_counter()
    from fedrec.anonymize import anonymize_file, load_key, make_key

    imported = time.perf_counter()
    import presidio_analyzer  # noqa: F401  (anonymize_file would import it on first use)

    warm = time.perf_counter()
    key_path = out.with_suffix(".key")
    key_path.unlink(missing_ok=True)
    key = load_key(make_key(key_path))
    cpu = _cpu_seconds()
    report = anonymize_file(log, out, key=key, k=k)
    done = time.perf_counter()
    return {"rows_in": report.rows_in, "rows_out": report.rows_out, "users_out": report.users_out,
            "k_achieved": report.k_achieved, "suppressed_users": report.suppressed_users,
            "import_seconds": round(warm - started, 2), "presidio_import_seconds": round(warm - imported, 2),
            "anonymize_seconds": round(done - warm, 2), "anonymize_cpu_seconds": round(_cpu_seconds() - cpu, 2)}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log", type=Path, help="anonymize this Parquet log instead of building one")
    parser.add_argument("--generator", choices=["synth", "numpy"], default=None,
                        help="how to build the log (default: synth where it exists, else numpy)")
    parser.add_argument("--stores", type=int, default=10)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="runs, each in a fresh process; the median is reported")
    parser.add_argument("--worker", nargs=2, metavar=("LOG", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(Path(args.worker[0]), Path(args.worker[1]), args.k)))
        return
    generator = args.generator or ("synth" if _has_synth() else "numpy")
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.log or build_log(args.out / f"log-{generator}-{args.rows}.parquet", args.rows, stores=args.stores,
                                generator=generator)
    runs = []
    for repeat in range(args.repeats):
        command = [sys.executable, __file__, "--out", str(args.out), "--k", str(args.k),
                   "--worker", str(log), str(args.out / "anonymized.parquet")]
        log_path = args.out / f"run-{repeat + 1}.log"
        # RSS sampled from outside: the child's own ru_maxrss would count this process's, inherited at fork
        measured = run_measured(command, log_path=log_path)
        if measured.returncode != 0:
            raise SystemExit(f"run {repeat + 1} failed; see {log_path}")
        wall = measured.wall_seconds
        run = {**json.loads(log_path.read_text().strip().splitlines()[-1]), "process_seconds": round(wall, 2),
               "peak_rss_mb": measured.peak_tree_rss_mb}
        runs.append(run)
        print(f"run {repeat + 1}: {run['rows_in']} rows in {run['anonymize_seconds']} s "
              f"({run['rows_in'] / run['anonymize_seconds']:,.0f} rows/s), process {wall:.1f} s, "
              f"peak RSS {run['peak_rss_mb']} MB", flush=True)
    rows = runs[0]["rows_in"]
    summary = {
        "rows": rows, "users_out": runs[0]["users_out"], "k": args.k, "k_achieved": runs[0]["k_achieved"],
        "anonymize_seconds": statistics.median(r["anonymize_seconds"] for r in runs),
        "anonymize_cpu_seconds": statistics.median(r["anonymize_cpu_seconds"] for r in runs),
        "import_seconds": statistics.median(r["import_seconds"] for r in runs),
        "process_seconds": statistics.median(r["process_seconds"] for r in runs),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
    }
    summary["rows_per_second"] = round(rows / summary["anonymize_seconds"])
    summary["rows_per_second_process"] = round(rows / summary["process_seconds"])
    print(f"\nmedian of {len(runs)} runs, each in a fresh process")
    print("| rows | users out | k achieved | anonymize s (CPU s) | rows/s | imports s | process s | rows/s (process) "
          "| peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {rows:,} | {summary['users_out']:,} | {summary['k_achieved']} | {summary['anonymize_seconds']} "
          f"({summary['anonymize_cpu_seconds']}) | {summary['rows_per_second']:,} | {summary['import_seconds']} | "
          f"{summary['process_seconds']} | {summary['rows_per_second_process']:,} | {summary['peak_rss_mb']} |")
    document = {"log": str(log), "generator": None if args.log else generator, "stores": args.stores,
                "machine": platform.platform(), "cpus": _cpus(), "summary": summary, "runs": runs}
    (args.out / "anonymize.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\n-> {args.out / 'anonymize.json'}")


def _has_synth() -> bool:
    return importlib.util.find_spec("fedrec.data.synth") is not None


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    main()

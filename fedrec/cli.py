"""The ``fedrec`` command. train's and simulate's options: fedrec.cli_options."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from fedrec import api, logs
from fedrec.api import Run
from fedrec.cli_options import Parser, add_config_flags, fill_simulate, fill_train, given_flags
from fedrec.config import AuditConfig, FederationConfig, TrainConfig
from fedrec.errors import ConfigError, FedrecError, ReleaseBlocked
from fedrec.rundir import RunDir


INCONSISTENT_AUDIT = 4  # exit status: an attack proved more than the accounted epsilon


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="fedrec", description="Privacy-preserving federated recommendation.")
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("-v", "--verbose", action="store_true", help="debug logging, and Flower's own log lines")
    talk.add_argument("-q", "--quiet", action="store_true", help="only warnings, errors and the final summary line; no progress bars")
    commands = parser.add_subparsers(dest="command", required=True)
    fill_train(commands.add_parser(
        "train", help="train one model centrally and evaluate it (full ranking, leave-one-out)",
        description="Train one model centrally and evaluate it (full ranking, leave-one-out).",
    ))
    fill_simulate(commands.add_parser(
        "simulate", help="federated training on Flower's simulation engine (one virtual SuperNode per client)",
        description="Federated training on Flower's simulation engine (one virtual SuperNode per client).",
    ))

    certs = commands.add_parser(
        "certs",
        help="make a CA + server certificate for the SuperLink's TLS, and SuperNode auth keys",
    )
    certs.add_argument("--out", type=Path, required=True, help="folder for ca.crt, server.pem, server.key, ...")
    certs.add_argument(
        "--host", action="append", dest="hosts", metavar="NAME_OR_IP",
        help="host name or IP the SuperLink is reached at (repeat; default: localhost 127.0.0.1 ::1)",
    )
    certs.add_argument("--days", type=int, default=365, help="validity in days")
    certs.add_argument("--nodes", nargs="*", default=[], metavar="NAME", help="also make SuperNode auth key pairs")
    certs.add_argument("--overwrite", action="store_true", help="replace existing files (a new CA!)")

    keys = commands.add_parser("keys", help="a new secret key for pseudonyms (mode 0600; keep it with the stores)")
    keys.add_argument("--out", type=Path, required=True, metavar="KEYFILE", help="where to write it (never overwritten)")

    anonymize = commands.add_parser(
        "anonymize", help="a store's raw log -> a pseudonymous, k-anonymous log to train on, and its report",
    )
    anonymize.add_argument("input", type=Path, metavar="IN", help="raw event log, .csv or .parquet (only read)")
    anonymize.add_argument("output", type=Path, metavar="OUT", nargs="?", help="anonymized log, .csv or .parquet")
    anonymize.add_argument("--key", type=Path, metavar="KEYFILE", help="the key from fedrec keys (needed with OUT)")
    anonymize.add_argument("--write-schema", type=Path, metavar="FILE",
                           help="write a draft schema (every column's guessed role) to FILE for review; no OUT, no key")
    anonymize.add_argument("--k", type=int, default=5, help="at least K customers share each quasi-identifier class")
    anonymize.add_argument("--l", type=int, default=None, help="also l-diverse in the sensitive attribute (e.g. 2)")
    anonymize.add_argument("--schema", type=Path, metavar="FILE", help="column roles, JSON (docs/anonymization.md)")
    anonymize.add_argument("--link-stores", action="store_true", help="one pseudonym per customer across stores")
    anonymize.add_argument("--scrub-text", action="store_true", help="keep free text with personal data replaced")
    anonymize.add_argument("--report", type=Path, metavar="DIR", help="report folder (default: OUT_anonymization/)")

    synth = commands.add_parser(
        "synth",
        help="synthetic beauty-shop logs with personal data, on the embedded Beauty histories (docs/synthetic-data.md)",
    )
    synth.add_argument("--stores", type=int, required=True, help="number of stores (grouped by region)")
    synth.add_argument("--out", type=Path, required=True, metavar="FILE", help="events file, .csv or .parquet")
    synth.add_argument("--users", type=int, default=None, help="customers, resampled from Beauty (default: every Beauty user once)")
    synth.add_argument("--seed", type=int, default=0, help="the same seed gives the same log")

    privacy = commands.add_parser(
        "privacy-report",
        help="the privacy budget a --dp run spent, per client: report.json, report.md and a plot in DIR/privacy/",
    )
    privacy.add_argument("dir", type=Path, metavar="DIR", help="the run directory (what --out/--resume named)")

    attacks = commands.add_parser(
        "privacy-audit",
        help="attack a simulated run as a curious server and an outsider would (item-set leakage from a replayed round, "
        "membership inference on the model, re-identification risk): DIR/privacy/attacks.json and attacks.md; exit "
        "status 4 when an attack proves more than the accounted epsilon (docs/privacy.md, \"Privacy audit\")",
    )
    attacks.add_argument("dir", type=Path, metavar="DIR", help="the run directory (what --out/--resume named)")
    attacks.add_argument("--round", type=int, default=None, help="the round to replay for the leakage attack (default: the last)")
    attacks.add_argument("--seed", type=int, default=0, help="draws of the audit (member sample, threshold split)")
    attacks.add_argument("--no-leakage", dest="leakage", action="store_false", help="skip the item-set leakage attack")
    attacks.add_argument("--no-membership", dest="membership", action="store_false", help="skip membership inference")

    audit = commands.add_parser(
        "audit",
        help="fairness and bias audit of a run's model and its release gate: DIR/audit/audit.json and audit.md; "
        "exit status 3 when the gate blocks the model (docs/audit.md)",
    )
    audit.add_argument("dir", type=Path, metavar="DIR", help="the run directory (what --out/--resume named)")
    add_gate_flags(audit)

    release = commands.add_parser(
        "release",
        help="release a run's model although its audit blocked it: DIR/release/ with the reason, user and time in "
        "the model card and DIR/audit/overrides.jsonl (a passing model is released by fedrec audit)",
    )
    release.add_argument("dir", type=Path, metavar="DIR", help="the run directory, audited (fedrec audit DIR)")
    release.add_argument("--override-reason", required=True, metavar="TEXT",
                         help="why this model may serve despite the failed checks (kept in the card)")

    serve = commands.add_parser("serve", help="serve a released model over HTTP (FastAPI + uvicorn; docs at /docs)")
    serve.add_argument("release", type=Path, metavar="RELEASE_DIR", help="a release folder (DIR/release) or its run DIR")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0 picks a free one)")
    serve.add_argument("--api-key-file", type=Path, metavar="FILE",
                       help="require this key in the X-API-Key header (health and metrics stay open)")
    serve.add_argument("--workers", type=int, default=api.SERVE_WORKERS,
                       help=f"worker processes (default: {api.SERVE_WORKERS}, this machine's cores up to 4; each watches "
                       "the folder and swaps in a new release by itself)")
    serve.add_argument("--torch-threads", type=int, default=1,
                       help="torch threads per worker (default: 1; one request is too small to share)")

    export = commands.add_parser(
        "export", help="a released lstm or mlp model as ONNX, with its item index and catalog, for a stack that is "
        "not Python (docs/export.md; needs pip install \"fedrec[export]\")")
    export.add_argument("release", type=Path, metavar="RELEASE_DIR", help="a release folder (DIR/release) or its run DIR")
    export.add_argument("--out", type=Path, required=True, metavar="DIR", help="a new folder for model.onnx and its files")
    return parser


def add_gate_flags(parser: argparse.ArgumentParser) -> None:
    add_config_flags(parser, AuditConfig)
    parser.add_argument("--baseline", type=Path, metavar="RELEASE_DIR",
                        help="the release/ folder of the model this one replaces: adds the change bounds "
                        "(--max-hr-drop, --max-group-ratio-drop)")


def run_certs(args: argparse.Namespace) -> None:
    from fedrec.federation.certs import DEFAULT_HOSTS, make_supernode_keys, make_tls_certificates

    tls = make_tls_certificates(args.out, args.hosts or list(DEFAULT_HOSTS), days=args.days, overwrite=args.overwrite)
    nodes = make_supernode_keys(args.out, args.nodes, overwrite=args.overwrite) if args.nodes else []
    print(f"CA: {tls.ca_cert} (keep {tls.ca_key} offline)\nSuperLink: {tls.server_cert}, {tls.server_key}")
    for node in nodes:
        print(f"SuperNode {node.name}: private {node.private_key}, public {node.public_key}")
    print(
        "\nStart the SuperLink (docs/deployment.md):\nflower-superlink --ssl-ca-certfile {ca} --ssl-certfile {cert} "
        "--ssl-keyfile {key} --enable-supernode-auth --disable-runtime-dependency-installation --host 127.0.0.1 "
        "--port PORT\nand let the stores reach only its Fleet API through nginx (docs/nginx-fleet-only.conf): "
        "the Control API on the same port authenticates nobody.".format(
            ca=tls.ca_cert, cert=tls.server_cert, key=tls.server_key
        )
    )


def given_options(args: argparse.Namespace, *classes: type) -> dict[str, object]:
    """The config flags the user gave, by field name (the API fills the rest from the recipes)."""
    return {name: getattr(args, name) for name in given_flags(args, *classes)}


def run_simulate(args: argparse.Namespace) -> Run:
    return api.simulate(args.out, resume=args.resume, config_file=args.config_file, ray_address=args.ray_address,
                        anonymize_key=args.anonymize_key,
                        k_anonymity=args.k_anonymity, link_stores=args.link_stores, schema=args.schema,
                        store_min_sum_stores=args.store_min_sum_stores, store_min_noise=args.store_min_noise,
                        verbose=args.verbose, **given_options(args, TrainConfig, FederationConfig))


def run_privacy_report(args: argparse.Namespace) -> None:
    from fedrec.privacy.report import REPORT_FILES, guarantee

    report = api.privacy_report(args.dir)
    folder = RunDir(args.dir).privacy
    for name in REPORT_FILES:
        if (folder / name).exists():
            print(folder / name)
    print(guarantee(report))


def run_audit(args: argparse.Namespace) -> None:
    document = api.audit(args.dir, baseline=args.baseline, **given_options(args, AuditConfig))
    report_gate(args.dir, document)


def report_gate(run_dir: Path, gate: dict) -> None:
    """Print the gate's outcome; a blocked model raises ReleaseBlocked (exit status 3)."""
    from fedrec.audit.gate import failed_checks

    failed = failed_checks(gate)
    where = gate.get("release") or RunDir(run_dir).audit / "audit.md"
    print(f"release gate of {run_dir}: {gate['verdict']} ({len(gate['checks']) - len(failed)} of "
          f"{len(gate['checks'])} checks passed) -> {where}")
    if gate.get("not_released"):
        print(f"not released: {gate['not_released']}")
    if gate.get("replaces"):  # fedrec audit over an earlier audit: said even under -q
        print(f"replaced the earlier audit ({gate['replaces']['verdict']}); it is kept in "
              f"{Path(run_dir) / gate['replaces']['kept_in']}")
    if failed:
        raise ReleaseBlocked(
            "release blocked: " + "; ".join(c["message"] for c in failed) + f". No release was written. Change the "
            f"model, loosen a bound with its flag (fedrec audit {run_dir} --help), or release it anyway with "
            f'fedrec release {run_dir} --override-reason "..." (recorded in the model card).')


def gate_outcome(run: Run) -> None:
    """After train/simulate: the gate's verdict (none when --no-release-gate or no model)."""
    gate = run.release_gate
    if gate is not None:
        report_gate(run.path, gate)


def configure_logging(*, verbose: bool, quiet: bool = False) -> logging.Logger:
    """The whole process's log in fedrec's one format (fedrec.logs): fedrec's loggers at INFO
    (DEBUG with -v, WARNING with -q, which also hides the progress bars), other libraries'
    lines and Python's warnings at WARNING. Returns fedrec's logger."""
    return logs.configure(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logger = configure_logging(verbose=args.verbose, quiet=args.quiet)
    try:
        with logging_redirect_tqdm(loggers=[logging.root, logger]):  # log lines print above a progress bar, not through it
            if args.command == "train":
                run = api.train(args.out, config_file=args.config_file, **given_options(args, TrainConfig))
                document, metrics = run.document, run.metrics
                print(
                    f"{document['model']} on {document['data']}: HR@10 {metrics['hr@10']:.4f} "
                    f"NDCG@10 {metrics['ndcg@10']:.4f} MRR {metrics['mrr']:.4f} "
                    f"({document['wall_seconds']:.0f} s) -> {RunDir(run.path).metrics}"
                )
                gate_outcome(run)
            elif args.command == "simulate":
                run = run_simulate(args)
                document, metrics = run.document, run.metrics
                print(
                    f"{document['model']} federated on {document['data']}: round {document['reported_round']} "
                    f"({document['round_selection']}) "
                    f"HR@10 {metrics.get('hr@10', float('nan')):.4f} NDCG@10 {metrics.get('ndcg@10', float('nan')):.4f} "
                    f"({document['wall_seconds']:.0f} s) -> {RunDir(run.path).metrics}"
                )
                gate_outcome(run)
            elif args.command == "keys":
                print(api.make_key(args.out))
            elif args.command == "anonymize" and args.write_schema:
                print(api.draft_schema(args.input, args.write_schema, schema=args.schema))
            elif args.command == "anonymize":
                if args.output is None or args.key is None:
                    raise ConfigError("fedrec anonymize needs OUT and --key KEYFILE (fedrec keys makes one); or "
                                      "--write-schema FILE to draft the log's schema first.")
                report = api.anonymize_log(args.input, args.output, key=args.key, k=args.k, l=args.l, schema=args.schema,
                                       link_stores=args.link_stores, scrub_text=args.scrub_text, report_dir=args.report)
                print(f"{report['rows_out']} rows, {report['users_out']} users, k={report['k_achieved']} -> {args.output}")
            elif args.command == "synth":
                events, catalog = api.synth(args.out, stores=args.stores, users=args.users, seed=args.seed)
                print(f"{events}\n{catalog}")
            elif args.command == "certs":
                run_certs(args)
            elif args.command == "privacy-report":
                run_privacy_report(args)
            elif args.command == "privacy-audit":
                return run_privacy_audit(args)
            elif args.command == "audit":
                run_audit(args)
            elif args.command == "serve":
                api.serve(args.release, host=args.host, port=args.port, api_key_file=args.api_key_file,
                          workers=args.workers, torch_threads=args.torch_threads)
            elif args.command == "export":
                done = api.export(args.release, args.out)
                print(f"{done.model} scorer, {done.n_items} items -> {done.folder / 'model.onnx'} "
                      f"(with items.csv, metadata.json; ONNX within {done.max_abs_diff:.1e} of the model)")
            elif args.command == "release":
                record = api.release(args.dir, override_reason=args.override_reason)
                print(f"released {RunDir(args.dir).release} over a {record['audit_verdict']} audit, overridden by "
                      f"{record['user']} at {record['time']}")
        return 0
    except ReleaseBlocked as err:
        print(f"fedrec: {err}", file=sys.stderr)
        return 3
    except FedrecError as err:
        print(f"fedrec: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fedrec: interrupted; files already written are complete.", file=sys.stderr)
        return 130


def run_privacy_audit(args: argparse.Namespace) -> int:
    document = api.privacy_audit(args.dir, round_number=args.round, seed=args.seed, leakage=args.leakage,
                                 membership=args.membership)
    print(RunDir(args.dir).attacks.with_suffix(".md"))
    for line in api.privacy_audit_summary(document):
        print(line)
    return INCONSISTENT_AUDIT if document["verdict"]["consistent"] is False else 0


if __name__ == "__main__":
    sys.exit(main())

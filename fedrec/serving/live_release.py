"""The release a serving process answers from, and how a new one replaces it.

``POST /admin/reload`` and the folder watcher (``watch``) both call ``reload``: the folder is
loaded again into a new ``ReleaseRecommender`` and the reference swapped, so a request in
flight keeps the object it started with; a new release that fails to load is refused and
the old one keeps serving. The watcher is for several worker processes: a POST reaches only
one of them, so each looks at the folder's checksums.sha256 itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from fedrec.errors import ConfigError
from fedrec.release.bundle import CHECKSUMS
from fedrec.serving.metrics import Metrics
from fedrec.serving.recommender import ReleaseRecommender, RequestProblem
from fedrec.serving.release_loader import Release, open_release

log = logging.getLogger("fedrec.serving")


class NotReady(RequestProblem):
    status = 503


class ReloadRefused(RequestProblem):
    status = 409


def release_info(service: ReleaseRecommender) -> dict[str, str]:
    details = service.release.card.get("model_details", {})
    return {"model": service.kind, "model_sha256": str(service.release.model_sha256 or ""),
            "verdict": str(service.release.verdict.get("verdict", "")),
            "released": str(details.get("version", {}).get("date", "")), "folder": str(service.release.folder)}


class LiveRelease:
    """The release being served, swapped whole on reload: a request in flight keeps the
    ``ReleaseRecommender`` it started with."""

    def __init__(self, release_dir: Path, release: Release | None, metrics: Metrics) -> None:
        self.release_dir = release_dir
        self.service: ReleaseRecommender | None = None if release is None else ReleaseRecommender(release)
        self.reload_lock = threading.Lock()
        self.metrics = metrics
        self.refused_checksums: str | None = None  # a new release the watcher could not load (not retried)

    def reload(self) -> tuple[ReleaseRecommender, ReleaseRecommender]:
        """Load the folder again and swap it in: (previous, current); ReloadRefused keeps the old one."""
        with self.reload_lock:
            previous = self.service
            if previous is None:
                raise NotReady("no release is loaded yet; retry when /readyz answers 200.")
            try:
                fresh = ReleaseRecommender(open_release(self.release_dir))
            except ConfigError as err:
                self.metrics.count("reloads", "refused")
                log.warning("reload refused, still serving %s: %s", previous.release.folder, err)
                raise ReloadRefused(f"the new release was refused and the current one keeps serving: {err}") from None
            self.service = fresh
        self.metrics.count("reloads", "swapped")
        log.info("reloaded: now serving the %s release with model sha256 %s", fresh.kind, str(fresh.release.model_sha256)[:12])
        return previous, fresh

    def new_checksums(self) -> str | None:
        """The folder's checksums.sha256 when it differs from the served release's (and was
        not refused before), else None."""
        service = self.service
        if service is None:
            return None
        try:
            text = (service.release.folder / CHECKSUMS).read_text(encoding="utf-8")
        except OSError:  # mid-swap, or removed: look again next time
            return None
        return None if text in (service.release.checksums, self.refused_checksums) else text

    async def watch(self, seconds: float) -> None:
        """Every ``seconds``: a changed release folder is loaded and swapped in; one that is
        refused is not tried again until it changes; nothing here stops the watching."""
        while True:
            await asyncio.sleep(seconds)
            seen = self.new_checksums()
            if seen is None:
                continue
            try:
                await run_in_threadpool(self.reload)
            except ReloadRefused:
                self.refused_checksums = seen
            except Exception:  # noqa: BLE001 - a bug here must not end the watching, nor the worker
                self.refused_checksums = seen
                log.exception("reload failed, still serving the previous release")

"""fedrec ServerApp: read the run config once, run the federation, write the run dir.

`flwr run .` reads [tool.flwr.app.config] from pyproject.toml (override with
--run-config "model='mf' rounds=5"); `fedrec simulate` builds the same app with its
CLI flags via :func:`server_app_for`.
"""

from __future__ import annotations

from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedrec.config import FederationConfig, TrainConfig, split_mapping
from fedrec.federation.server import run_federation


def server_app_for(train: TrainConfig | None = None, federation: FederationConfig | None = None) -> ServerApp:
    """A ServerApp; with configs given, they replace the run config (used by fedrec simulate)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        if train is None or federation is None:
            run_train, run_federation_config = split_mapping(dict(context.run_config))
        else:
            run_train, run_federation_config = train, federation
        run_federation(grid, run_train, run_federation_config, Path(run_federation_config.run_dir), context,
                       checked=train is not None)  # fedrec simulate checked them before Ray started

    return app


app = server_app_for()

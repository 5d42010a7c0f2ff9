"""The pfl-research arm of simulations/benchmark_devices.py: the cross-device workload in
pfl-research 0.6's own simulation, in the interpreter that has pfl (not fedrec's venv).

    .venv-pfl/bin/python simulations/pfl_arm.py --spec OUT/workload.json --result OUT/pfl.result.json [--fused]

The driver writes the workload (fedrec's resolved TrainConfig, the seeded cohorts, local
steps, server momentum). Here pfl does the rest as its cross-device benchmarks do: a
``PyTorchModel`` around fedrec's ``SequenceNet`` (loss: fedrec's next-item cross-entropy),
a ``FederatedDataset`` of one user per client (the batch fedrec's own ``batches`` makes from
the user's train window), ``FederatedAveraging`` whose central optimizer is torch SGD with
momentum (FedAvgM; the issue's recipe) or torch Adam with FedAdam's beta_2 and tau (the device
default), the local optimizer the spec's (Adam or SGD), each update weighted by the user's
next-item targets as fedrec weights it, on the simulated backend. Evaluation is off in every round.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from pfl.aggregate.simulate import SimulatedBackend
from pfl.aggregate.weighting import WeightingStrategy
from pfl.algorithm import FederatedAveraging, NNAlgorithmParams
from pfl.callback.base import TrainingProcessCallback
from pfl.data.dataset import Dataset
from pfl.data.federated_dataset import FederatedDataset
from pfl.data.sampling import MinimizeReuseUserSampler
from pfl.hyperparam import NNTrainHyperParams
from pfl.metrics import Metrics, Weighted
from pfl.model.pytorch import PyTorchModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_devices import load_workload, targets_of, user_split  # noqa: E402


class PflSequenceNet(torch.nn.Module):
    """fedrec's network with the two methods pfl's PyTorchModel calls."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        self.net.train()  # as fedrec's run_epoch: dropout on while training
        return self.net(inputs, targets)  # (1, L) ids, (1, L) next items -> mean cross-entropy

    @torch.no_grad()
    def metrics(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict:
        return {"loss": Weighted.from_unweighted(float(self.net(inputs, targets)))}


class WeightByTargets(WeightingStrategy):
    """Each user's update weighted by its next-item targets (fedrec's NUM_EXAMPLES)."""

    def __init__(self, weights: dict[int, int]) -> None:
        self.weights = weights

    def postprocess_one_user(self, *, stats, user_context):
        stats.reweight(self.weights[user_context.user_id])
        return stats, Metrics()


class NoEvaluation(FederatedAveraging):
    """FedAvg that never evaluates (pfl evaluates every user before and after training in
    any round where iteration % evaluation_frequency == 0, round 0 included)."""

    def get_next_central_contexts(self, *args, **kwargs):
        contexts, model, metrics = super().get_next_central_contexts(*args, **kwargs)
        if contexts is not None:
            contexts = tuple(dataclasses.replace(c, do_evaluation=False) for c in contexts)
        return contexts, model, metrics


class RoundTimer(TrainingProcessCallback):
    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.mark = 0.0

    def on_train_begin(self, *, model) -> Metrics:
        self.mark = time.perf_counter()
        return Metrics()

    def after_central_iteration(self, aggregate_metrics, model, *, central_iteration):
        now = time.perf_counter()
        self.seconds.append(now - self.mark)
        self.mark = now
        return False, Metrics()


def run(spec: dict, *, fused: bool, weights_out: Path | None = None) -> dict:
    model, split = load_workload(spec)
    users = sorted({u for cohort in spec["cohorts"] for u in cohort})
    rng = np.random.default_rng(spec["seed"])
    # One batch per user, made by fedrec's own batching (tensors: pfl would cast numpy to float32).
    data = {u: list(next(iter(model.batches(user_split(split, u), rng)[0]))) for u in users}
    sampler = MinimizeReuseUserSampler([u for cohort in spec["cohorts"] for u in cohort])  # the driver's cohorts, in order
    federated = FederatedDataset(lambda u: Dataset(data[u], user_id=u), sampler)
    if model.config.optimizer == "sgd":
        local_optimizer = torch.optim.SGD
    else:
        local_optimizer = functools.partial(torch.optim.Adam, fused=True) if fused else torch.optim.Adam
    wrapped = PflSequenceNet(model.net)
    if spec.get("server_strategy", "fedavgm") == "fedadam":  # FedAdam: Adam on the pseudo-gradient, Flower's beta_2 and tau
        central = torch.optim.Adam(wrapped.parameters(), lr=spec["server_lr"], betas=(spec["server_momentum"], 0.99), eps=1e-3)
    else:  # FedAvgM
        central = torch.optim.SGD(wrapped.parameters(), lr=spec["server_lr"], momentum=spec["server_momentum"])
    pfl_model = PyTorchModel(wrapped, local_optimizer_create=local_optimizer, central_optimizer=central)
    backend = SimulatedBackend(training_data=federated, val_data=None,
                               postprocessors=[WeightByTargets({u: targets_of(split, u) for u in users})])
    timer = RoundTimer()
    NoEvaluation().run(
        algorithm_params=NNAlgorithmParams(central_num_iterations=spec["rounds"], evaluation_frequency=spec["rounds"] + 1,
                                           train_cohort_size=spec["cohort_size"], val_cohort_size=0),
        backend=backend, model=pfl_model,
        model_train_params=NNTrainHyperParams(local_num_epochs=spec["local_steps"], local_learning_rate=model.config.lr,
                                              local_batch_size=None),
        callbacks=[timer],
    )
    if weights_out is not None:  # to check the arms against each other (same cohorts, dropout 0)
        torch.save({k: v.detach().clone() for k, v in model.shared_parameters().items()}, weights_out)
    return {"seconds_per_round": timer.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--fused", action="store_true", help="torch's fused Adam as the local optimizer")
    parser.add_argument("--weights-out", type=Path, help="save the final global weights here")
    args = parser.parse_args()
    result = run(json.loads(args.spec.read_text()), fused=args.fused, weights_out=args.weights_out)
    args.result.write_text(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()

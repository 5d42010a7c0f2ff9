"""Who is which federated client: users grouped into stores (cross-silo) or one per client.

A user's whole history lives in exactly one client, so nothing about a user is split
across clients. Without a ``store_id`` column, stores are simulated with the label-skew
Dirichlet split common in the FL literature (Yurochkin et al. 2019, used by Hsu et al. 2019
and Flower Datasets' ``DirichletPartitioner``): each label's users are dealt out to stores in
proportions drawn from Dirichlet(alpha), so a small alpha gives stores with narrow tastes.
Everything here is a pure function of the data and the seed.

The package re-exports the public names so ``from fedrec.data.partition import X`` keeps
working; the modules split along one idea each: ``stats`` (the Partition type and its skew),
``labels`` (user labels), ``stores`` (store assignment), ``schemes`` (scheme dispatch),
``slicing`` (one client's data).
"""

from fedrec.data.partition.labels import POPULARITY_BANDS, user_labels
from fedrec.data.partition.schemes import make_partition, partition_by_user
from fedrec.data.partition.slicing import client_interactions
from fedrec.data.partition.stats import SCHEMES, Partition
from fedrec.data.partition.stores import partition_by_store

__all__ = [
    "POPULARITY_BANDS",
    "SCHEMES",
    "Partition",
    "client_interactions",
    "make_partition",
    "partition_by_store",
    "partition_by_user",
    "user_labels",
]

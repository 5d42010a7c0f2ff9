"""Behaviour data: readers, id maps, the leave-one-out split and the embedded Beauty set."""

from fedrec.data.interactions import IdMap, Interactions
from fedrec.data.loading import BEAUTY, load_dataset
from fedrec.data.split import EvalSet, LeaveOneOut, leave_one_out

__all__ = ["BEAUTY", "EvalSet", "IdMap", "Interactions", "LeaveOneOut", "leave_one_out", "load_dataset"]

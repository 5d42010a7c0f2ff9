"""Recommenders behind one interface (see ``base.Recommender``); importing registers them."""

from fedrec.models.base import FitResult, Recommender
from fedrec.models.itemknn import ItemKNN
from fedrec.models.lstm import LSTMRecommender
from fedrec.models.mf import MatrixFactorization
from fedrec.models.mlp import MLPRecommender
from fedrec.models.pop import Popularity
from fedrec.models.userknn import UserKNN
from fedrec.models.registry import create_model, load_model, model_class, model_names, register_model

__all__ = [
    "FitResult", "ItemKNN", "LSTMRecommender", "MLPRecommender", "MatrixFactorization", "Popularity",
    "Recommender", "UserKNN", "create_model", "load_model", "model_class", "model_names", "register_model",
]

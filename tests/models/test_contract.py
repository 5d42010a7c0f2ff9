"""The contract every recommender keeps: one test class, inherited once per model.

Each class trains its model once (class-scoped fixtures) and every contract test reads it.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from fedrec.data import leave_one_out, load_dataset
from fedrec.errors import ModelError
from fedrec.evaluation import evaluate
from fedrec.models import create_model, load_model
from fedrec.training import fit_model
from tests.conftest import FAST_CONFIG, write_chain_sequences


def write_popular_endings(path, *, n_users: int = 60, seed: int = 0):
    """Each user reads 2 of items 6..60, then 4 distinct of the popular items 1..5: the
    held-out last item is always one of the 5 most popular, unseen by that user."""
    rng = np.random.default_rng(seed)
    lines = []
    for user in range(1, n_users + 1):
        prefix = rng.choice(np.arange(6, 61), size=2, replace=False)
        ending = rng.choice(np.arange(1, 6), size=4, replace=False)
        lines.append(" ".join(map(str, [user, *prefix, *ending])))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class RecommenderContract:
    """Subclasses set ``model_name`` and ``min_test_hr10`` (what their data allows: a
    random ranker of the chain data gets about 10 / 30)."""

    model_name: str
    min_test_hr10: float
    config_changes: dict = {}
    # What the model answers serving, fold-in and the release audit (Recommender's interface).
    has_item_vectors = False
    has_item_similarities = False
    has_item_factors = False
    next_item = False

    def write_data(self, path):
        return write_chain_sequences(path)

    @pytest.fixture(scope="class")
    def data_split(self, tmp_path_factory):
        data = load_dataset(str(self.write_data(tmp_path_factory.mktemp(self.model_name) / "data.txt")))
        return data, leave_one_out(data)

    @pytest.fixture(scope="class")
    def config(self):
        return dataclasses.replace(FAST_CONFIG, model=self.model_name, **self.config_changes)

    @pytest.fixture(scope="class")
    def fitted(self, data_split, config):
        data, split = data_split
        model = create_model(self.model_name, config, n_users=data.n_users, n_items=data.n_items)
        fit_model(model, split)
        return model, split

    def test_scores_cover_all_items_plus_padding(self, fitted):
        model, split = fitted
        scores = model.score(split.test.users[:7], split.test.histories[:7])
        assert tuple(scores.shape) == (7, model.n_items + 1)
        assert scores.dtype == torch.float32

    def test_recommend_never_returns_seen_items_or_padding(self, fitted):
        model, split = fitted
        top = model.recommend(split.test.users, split.test.histories, k=5)
        assert top.shape == (len(split.test.users), 5)
        for row, history in zip(top, split.test.histories):
            assert 0 not in row
            assert not set(row) & set(history.tolist())

    def test_learns_the_pattern_beyond_chance(self, fitted):
        model, split = fitted
        hr10 = evaluate(model, split.test)["hr@10"]
        assert hr10 >= self.min_test_hr10

    def test_save_then_load_scores_identically(self, fitted, tmp_path):
        model, split = fitted
        path = model.save(tmp_path / "model.pt")
        loaded = load_model(path)
        assert type(loaded) is type(model)
        assert loaded.config == model.config
        users, histories = split.test.users[:10], split.test.histories[:10]
        torch.testing.assert_close(loaded.score(users, histories), model.score(users, histories))

    def test_item_vectors_are_unit_rows_for_the_items_that_have_their_own(self, fitted):
        model, _ = fitted
        space = model.item_vectors()
        assert (space is not None) == self.has_item_vectors
        if space is None:
            return
        rows = model.n_items + 1
        assert space.vectors.shape[0] == rows and space.vectors.dtype == torch.float32
        assert space.own.shape == (rows,) and space.own.dtype == bool and not space.own[0]
        norms = space.vectors.norm(dim=1)
        torch.testing.assert_close(norms[torch.from_numpy(space.own)], torch.ones(int(space.own.sum())))
        assert norms[torch.from_numpy(~space.own)].eq(0).all()
        assert space.description

    def test_item_similarities_are_an_item_by_item_table_of_neighbours(self, fitted):
        model, split = fitted
        table = model.item_similarities()
        assert (table is not None) == self.has_item_similarities
        if table is None:
            return
        assert table.shape == (model.n_items + 1, model.n_items + 1)
        history = split.test.histories[0]
        seen = np.zeros(model.n_items + 1, dtype=np.float32)
        np.add.at(seen, history, 1.0)
        torch.testing.assert_close(model.score(split.test.users[:1], [history])[0], torch.from_numpy(seen @ table))

    def test_item_factors_are_the_item_side_of_a_user_vector_model(self, fitted):
        model, _ = fitted
        factors = model.item_factors()
        assert (factors is not None) == self.has_item_factors
        if factors is None:
            return
        assert factors.vectors.shape[0] == model.n_items + 1 and factors.bias.shape == (model.n_items + 1,)

    def test_a_scorer_ranks_users_the_model_holds_no_vector_for(self, fitted):
        model, split = fitted
        assert model.scorer_for(model.n_users) is model
        histories = split.test.histories[:3]
        scores = model.scorer_for(model.n_users + 1).score(np.zeros(3, dtype=np.int64), histories)
        assert tuple(scores.shape) == (3, model.n_items + 1)

    def test_history_length_is_all_the_model_reads_of_a_history(self, fitted):
        model, split = fitted
        assert model.predicts_next_item is self.next_item
        length = model.history_length()
        assert length is None or length >= 1
        if length is not None:
            users, history = split.test.users[:1], np.concatenate([np.arange(1, model.n_items + 1)] * 2)
            torch.testing.assert_close(model.score(users, [history]), model.score(users, [history[-length:]]))

    def test_scoring_before_fit_is_an_error_or_deterministic(self, data_split, config):
        data, split = data_split
        model = create_model(self.model_name, config, n_users=data.n_users, n_items=data.n_items)
        try:
            first = model.score(split.test.users[:3], split.test.histories[:3])
        except ModelError as err:
            assert "fit" in str(err)
        else:  # neural models score with their initial weights, reproducibly per seed
            again = create_model(self.model_name, config, n_users=data.n_users, n_items=data.n_items)
            torch.testing.assert_close(again.score(split.test.users[:3], split.test.histories[:3]), first)


class TestPopularity(RecommenderContract):
    model_name = "pop"
    min_test_hr10 = 0.9  # every held-out item is among the 5 most popular (a random ranker: ~10 / 58)

    def write_data(self, path):
        return write_popular_endings(path)

    def test_most_popular_unseen_item_comes_first(self, fast_config):
        from fedrec.data.split import LeaveOneOut

        train = [np.array([1, 2]), np.array([2, 3]), np.array([2, 4])]
        split = LeaveOneOut(train=train, valid=None, test=None, n_items=4)
        model = create_model("pop", fast_config, n_users=3, n_items=4)
        fit_model(model, split)
        top = model.recommend(np.array([0]), [np.array([1])], k=2)
        assert top[0].tolist()[0] == 2


class TestItemKNN(RecommenderContract):
    model_name = "itemknn"
    min_test_hr10 = 0.5
    has_item_similarities = True


class TestUserKNN(RecommenderContract):
    model_name = "userknn"
    min_test_hr10 = 0.5

    def test_a_user_is_not_their_own_neighbour(self, config, tmp_path):
        """An item only one user has scores zero for that user: only others vote."""
        path = tmp_path / "three.txt"
        path.write_text("1 1 2 3 4 5\n2 1 2 6 7 8\n3 2 3 9 10 11\n", encoding="utf-8")
        data = load_dataset(str(path))
        split = leave_one_out(data)
        model = create_model(self.model_name, config, n_users=data.n_users, n_items=data.n_items)
        fit_model(model, split)
        user = int(data.users.to_index([3])[0])
        scores = model.score(np.array([user]), [split.train[user]])[0]
        nine, six = data.items.to_index([9, 6])
        assert float(scores[nine]) == 0.0  # only user 3 has item 9
        assert float(scores[six]) > 0.0  # user 2 shares item 2 with user 3 and has item 6

    def test_it_is_never_federated_or_released(self, fitted):
        from fedrec.errors import ConfigError
        from fedrec.federation.client import check_federated

        model, _ = fitted
        assert not model.releasable and "every customer's history" in model.not_releasable_because
        with pytest.raises(ConfigError, match="never federated or released"):
            check_federated("userknn")


class TestUserKNNPearson(TestUserKNN):
    config_changes = {"similarity": "pearson"}


class TestMatrixFactorization(RecommenderContract):
    model_name = "mf"
    min_test_hr10 = 0.2
    has_item_vectors = True
    has_item_factors = True

    def test_item_factors_and_its_user_vectors_give_its_scores(self, fitted):
        model, split = fitted
        factors = model.item_factors()
        users = split.test.users[:5]
        vectors = model.net.user_embedding.weight[torch.as_tensor(users)].detach()
        torch.testing.assert_close(model.score(users, split.test.histories[:5]), vectors @ factors.vectors.T + factors.bias)

    def test_users_without_a_vector_are_scored_by_fold_in(self, fitted):
        model, split = fitted
        histories = split.train[:4]
        with torch.no_grad():
            expected = model.net.logits(model.fold_in(histories))
        torch.testing.assert_close(model.scorer_for(0).score(np.zeros(4, dtype=np.int64), histories), expected)

    def test_fold_in_rebuilds_a_user_vector_that_ranks_their_items_high(self, fitted):
        model, split = fitted
        histories = split.train[:20]
        scores = model.score_folded_in(histories)
        # Items a user already has should beat the median item for that user.
        for row, history in zip(scores, histories):
            assert row[history].mean() > row[1:].median()

    def test_only_item_side_parameters_are_shareable(self, fitted):
        model, _ = fitted
        assert set(model.shareable_parameters) == {"item_embedding.weight", "item_bias.weight"}
        assert all(name in model.state() for name in model.shareable_parameters)
        assert "user_embedding.weight" not in model.shareable_parameters


class TestLSTM(RecommenderContract):
    model_name = "lstm"
    min_test_hr10 = 0.6
    has_item_vectors = True
    next_item = True

    def test_private_layers_hold_the_same_weights_under_the_same_names(self, fitted):
        from opacus.layers import DPLSTM

        from fedrec.privacy.opacus_layers import make_private_layers

        model, _ = fitted
        net = copy.deepcopy(model.net)
        assert make_private_layers(net) is net and isinstance(net.rnn, DPLSTM)
        assert set(net.portable_state()) == set(model.state())
        for name, value in net.portable_state().items():
            assert torch.equal(value, model.state()[name]), name
        net.train()  # the training path runs the DPLSTM itself
        sequences = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
        with torch.no_grad():
            torch.testing.assert_close(net.hidden(sequences), model.net.hidden(sequences), atol=1e-6, rtol=1e-6)


class TestMLP(RecommenderContract):
    """The pooled MLP: the LSTM recommender with its recurrent layer replaced."""

    model_name = "mlp"
    min_test_hr10 = 0.6
    has_item_vectors = True
    next_item = True

    def test_its_network_has_no_recurrent_layer(self, fitted):
        model, _ = fitted
        assert not any(isinstance(m, torch.nn.LSTM) for m in model.net.modules())
        assert not any(name.startswith("rnn.") for name in model.state())


class WithAttributes:
    """Chain data with catalog attributes, read by the model before it is fitted
    (``--attribute-buckets``)."""

    config_changes = {"attribute_buckets": 16}

    def write_data(self, path):
        import json

        attributes = {str(item): [item % 4, 10 + item % 3] for item in range(1, 31)}
        (path.parent / f"{path.stem}_item2attributes.json").write_text(json.dumps(attributes), encoding="utf-8")
        return write_chain_sequences(path)

    @pytest.fixture(scope="class")
    def fitted(self, data_split, config):
        data, split = data_split
        model = create_model(self.model_name, config, n_users=data.n_users, n_items=data.n_items)
        model.use_item_attributes(data)
        fit_model(model, split)
        return model, split


class TestMLPWithAttributes(WithAttributes, TestMLP):
    pass


class TestLSTMWithAttributes(WithAttributes, RecommenderContract):
    """Items also read and scored through catalog attributes."""

    model_name = "lstm"
    min_test_hr10 = 0.6
    has_item_vectors = True
    next_item = True

    def test_attribute_table_is_part_of_the_shared_state(self, fitted):
        model, _ = fitted
        table = model.shareable_state()["item_attributes"]
        assert table[0].eq(0).all()  # padding has no attributes
        # item 5: attributes 1 and 12 -> buckets (a % 16) + 1, sorted
        assert table[5, :2].tolist() == [2, 13] and table[5, 2:].eq(0).all()


def test_attributes_asked_of_data_without_them_are_refused(chain_split, fast_config):
    from fedrec.errors import ConfigError

    data, _ = chain_split
    model = create_model("lstm", dataclasses.replace(fast_config, attribute_buckets=8), n_users=data.n_users, n_items=data.n_items)
    with pytest.raises(ConfigError, match="item attribute file"):
        model.use_item_attributes(data)


def random_sequence_net(n_items: int, vocab_size: int, buckets: int, *, private: bool = False):
    """A SequenceNet of dim 8 with catalog attributes (3 an item), a random vocabulary and
    every weight random, padding rows included (DP noise makes them non-zero)."""
    from fedrec.models.sequence_net import SequenceNet
    from fedrec.privacy.opacus_layers import make_private_layers

    torch.manual_seed(0)
    net = SequenceNet(n_items, 8, 0.0, vocab_size=vocab_size, attribute_buckets=buckets)
    if private:
        make_private_layers(net)
    if buckets:
        net.set_attributes([[]] + [[item % 7, 9 + item % 5, 20 + item % 3] for item in range(1, n_items + 1)])
    if vocab_size:
        net.set_vocabulary(torch.randperm(n_items) + 1)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.normal_(0.0, 0.5)
    return net


@pytest.mark.parametrize("private, vocab_size, buckets", [(True, 20, 16), (True, 0, 16), (False, 0, 0), (False, 20, 0)])
def test_scoring_path_gives_the_training_path_scores(private, vocab_size, buckets):
    """Scoring (fused LSTM, dense item table) equals the trained path (DPLSTM, the item-score
    head) for one row and for a batch, with every weight random, padding
    rows included (DP noise makes them non-zero)."""
    from fedrec.models.sequences import right_pad

    net = random_sequence_net(60, vocab_size, buckets, private=private)
    net.eval()
    sequences = [np.array([3, 9, 4]), np.array([7]), np.array([1, 2, 3, 4, 5, 60])]
    lengths = torch.tensor([len(s) for s in sequences])
    last_items = torch.tensor([s[-1] for s in sequences])
    with torch.no_grad():
        net.train()  # the training path: DPLSTM when private, no dense table
        trained = net.item_logits(net.hidden(right_pad(sequences))[torch.arange(3), lengths - 1], last_items)
        net.eval()
        states = net.hidden(right_pad(sequences))[torch.arange(3), lengths - 1]
        scored = net.scoring_item_logits(states, last_items)
        one = net.scoring_item_logits(states[2:], last_items[2:])
    torch.testing.assert_close(scored, trained, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(one, trained[2:], atol=1e-4, rtol=1e-4)
    with torch.no_grad():  # a step changes the weights: the scoring tables follow
        for parameter in net.parameters():
            parameter.add_(0.1)
        net.train()
        trained = net.item_logits(net.hidden(right_pad(sequences))[torch.arange(3), lengths - 1], last_items)
        net.eval()
        scored = net.scoring_item_logits(net.hidden(right_pad(sequences))[torch.arange(3), lengths - 1], last_items)
    torch.testing.assert_close(scored, trained, atol=1e-4, rtol=1e-4)
    if private:
        assert isinstance(net.encoder(scoring=True), torch.nn.LSTM) and net.encoder(scoring=True) is not net.rnn


@pytest.mark.parametrize("positions", [7, 40])  # fewer than dim 8 (unfolded), more (folded)
@pytest.mark.parametrize("vocab_size", [0, 20])
def test_item_score_head_gives_the_definition_of_the_attribute_scores(vocab_size, positions):
    """The head, folded (one dense item table, the affinity bonus as a bag of bucket rows) or
    not (a few positions), equals the scores as defined, written out densely: the class
    scores spread over items, plus each item's summed bucket scores, the state's and the last
    item's affinity bonus; every weight random, DP noise's non-zero padding rows included."""
    from fedrec.models.item_vocabulary import spread_over_items

    n_items, buckets = 60, 16
    net = random_sequence_net(n_items, vocab_size, buckets)
    states, last_items = torch.randn(positions, 8), torch.tensor([0, 1, 5, 5, 33, 59, 60] * (positions // 7 + 1))[:positions]
    item_buckets = torch.zeros(n_items + 1, buckets + 1)
    for item in range(n_items + 1):
        for bucket in net.item_attributes[item]:
            if bucket > 0:
                item_buckets[item, bucket] = 1.0
    class_scores = net.output(states)
    by_class = spread_over_items(class_scores, net.item_class) if vocab_size else class_scores
    by_bucket = net.attribute_output(states)
    for row, last in enumerate(last_items):
        for bucket in net.item_attributes[last]:
            by_bucket[row, bucket] = by_bucket[row, bucket] + net.attribute_affinity.weight[bucket, 0]
    expected = by_class + by_bucket @ item_buckets.T
    torch.testing.assert_close(net.item_head(states, last_items), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(net.item_logits(states[None], last_items[None])[0], expected, atol=1e-5, rtol=1e-5)


def test_bucket_tables_are_built_once_per_table_contents():
    """A federated client builds a fresh model each round and loads the same attribute table:
    its bucket tables are reused; a changed table gets its own."""
    from fedrec.models.sequence_net import SequenceNet

    attributes = [[]] + [[item % 7, 9 + item % 5] for item in range(1, 31)]
    first, second = SequenceNet(30, 8, 0.0, attribute_buckets=16), SequenceNet(30, 8, 0.0, attribute_buckets=16)
    first.set_attributes(attributes)
    second.set_attributes(attributes)
    assert first.bucket_tables() is second.bucket_tables()
    second.set_attributes([[]] + [[item % 3] for item in range(1, 31)])
    changed = second.bucket_tables()
    assert changed is not first.bucket_tables()
    assert changed.items_of_buckets.sum() == 30  # one bucket per item now
    torch.testing.assert_close(changed.csr.to_dense(), changed.matrix.to_dense())
    torch.testing.assert_close(changed.items_of_buckets, changed.matrix.to_dense().T)

"""`SharedRanker`: one ranker for forked workers, its numpy model shared."""

import os

import pytest

from recsys.serving.reranker import Reranker
from recsys.serving.service import RetrievalService
from recsys.serving.shared_model import UNSUPPORTED
from recsys.serving.shared_ranker import SharedRanker
from recsys.storage.files import BundleError
from tests.serving.test_fast_ranker import _assert_scores_as
from tests.serving.test_rerank_batching import _assert_same
from tests.serving.test_rerank_batching import _queries


@pytest.fixture(scope="module")
def service(trained_bundle):
    return RetrievalService(trained_bundle[0], precompute_depth=20)


# The child only writes numpy arrays and exits: JAX, loaded in this test
# process by other tests, warns about any fork. (The server's helper,
# forked before any thread, converts the model itself.)
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_workers_rerank_as_a_single_server_without_keras(
    ranker_bundle, service, trained_bundle
):
    shared = SharedRanker.load(ranker_bundle.path)
    assert shared.bundle._model is None  # no Keras model in the supervisor
    single = Reranker(ranker_bundle)
    fast = single.numpy_ranker
    assert fast is not None
    pid = os.fork()
    if pid == 0:  # the helper's part: write the converted model
        shared.shared.write(fast)
        os._exit(0)
    os.waitpid(pid, 0)
    worker = shared.reranker()
    assert worker.kind == "numpy"
    assert worker._scorer.encoder is shared.encoder  # built before forking
    table = worker.numpy_ranker.embedded[0][1]
    assert not table.flags.writeable  # a view of the shared memory
    _assert_scores_as(
        worker._scorer, single._scorer, ranker_bundle, tolerance=1e-6
    )
    queries = _queries(trained_bundle[0])
    found = worker.retrieve_many(service, queries)
    expected = single.retrieve_many(service, queries)
    for answer, alone in zip(found, expected, strict=True):
        if isinstance(alone, Exception):
            assert type(answer) is type(alone)
        else:
            _assert_same(answer, alone)
    assert shared.bundle._model is None  # still no Keras in the worker


def test_an_unsupported_model_makes_the_worker_load_keras(ranker_bundle):
    shared = SharedRanker.load(ranker_bundle.path)
    shared.shared._set_state(UNSUPPORTED)  # what the helper writes then
    worker = shared.reranker()
    assert shared.bundle._model is not None  # loaded from the checked bytes
    _assert_scores_as(worker._scorer, ranker_bundle, ranker_bundle)


def test_a_bundle_that_cannot_rerank_is_refused(trained_bundle, tmp_path):
    with pytest.raises(ValueError, match="must be a tabular bundle"):
        SharedRanker.load(trained_bundle[0].path)
    with pytest.raises(BundleError):
        SharedRanker.load(str(tmp_path))

"""`TabularBundle.predict` warns of values the model never learned."""

import numpy as np

from recsys.scoring import score_file

UNKNOWN = [10**9, 10**9 + 1]  # movie ids no training row has


def _known_rows(bundle, frame, n):
    """`n` rows of `frame` whose every category value the bundle learned."""
    learned = bundle.preprocessor.vocabularies_
    known = np.ones(len(frame), bool)
    for name in ("userId", "movieId"):
        known &= frame[name].astype(str).isin(learned[name]).to_numpy()
    return frame[known].head(n).reset_index(drop=True)


def _said(caplog):
    return [
        record.getMessage()
        for record in caplog.records
        if "never learned" in record.getMessage()
    ]


def test_predict_warns_once_of_values_the_model_never_learned(
    rating_run, small_frame, caplog
):
    # Only `recsys score` counted them: `predict` scored `RENT` (training
    # had `rent`) as the unknown value without a word.
    bundle, _ = rating_run
    rows = _known_rows(bundle, small_frame, 6)
    with caplog.at_level("WARNING"):
        bundle.predict(rows)
    assert _said(caplog) == []
    rows.loc[[1, 4], "movieId"] = UNKNOWN
    rows.index = rows.index + 100  # an example found by position
    with caplog.at_level("WARNING"):
        bundle.predict(rows, batch_size=2)
    [message] = _said(caplog)
    assert "'movieId' in 2 of 6 rows, e.g. 1000000000" in message
    # Pairs are the bundle's own tables' values: scored without a word.
    caplog.clear()
    with caplog.at_level("WARNING"):
        bundle.score_pairs([1, 1], UNKNOWN)
    assert _said(caplog) == []


def test_a_file_of_several_chunks_is_warned_of_once(
    rating_run, small_frame, tmp_path, caplog
):
    bundle, _ = rating_run
    rows = _known_rows(bundle, small_frame, 10)
    rows.loc[[1, 8], "movieId"] = UNKNOWN
    rows.to_parquet(tmp_path / "in.parquet", index=False)
    with caplog.at_level("WARNING"):
        score_file(
            bundle,
            str(tmp_path / "in.parquet"),
            str(tmp_path / "out.parquet"),
            batch_size=4,
            progress=False,
        )
    [message] = _said(caplog)
    assert "'movieId' in 2 of 10 rows, e.g. 1000000000" in message

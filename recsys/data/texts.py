"""`check_texts`: a text column holds non-empty strings, or says where not."""


def check_texts(texts, column):
    """Raises a `ValueError` for non-string or empty texts, naming them.

    Args:
        texts: pandas Series of texts.
        column: str. Its name, for the message.
    """
    not_text = texts.map(lambda v: not isinstance(v, str))
    if bool(not_text.any()):
        examples = texts[not_text].head(3).tolist()
        raise ValueError(
            f"Text column '{column}' holds {int(not_text.sum())} values that "
            f"are not strings (e.g. {examples} at rows "
            f"{texts.index[not_text][:3].tolist()}). Fix: drop those rows or "
            "convert the column to text."
        )
    empty = texts.str.strip() == ""
    if bool(empty.any()):
        count = int(empty.sum())
        raise ValueError(
            f"Text column '{column}' holds {count} empty "
            f"text{'s' if count > 1 else ''} "
            f"(rows {texts.index[empty][:5].tolist()}). Fix: drop those rows; "
            "an empty text carries nothing to classify."
        )

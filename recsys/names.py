"""Names of the model inputs that no feature spec declares.

Data preparation, bundles and the service put these keys into the input
dicts the models read. They live here, in a module that imports nothing,
so that code which only needs a name (a tabular bundle, the service's
request parsing) does not import Keras to learn it.

Example:

```python
from recsys.names import HISTORY

inputs = {"user_id": user_ids, HISTORY: previous_items}
```
"""

# The user's previous (two-tower) or liked (tabular) items: ids of the item
# column's vocabulary, `(batch, history_length)`, 0 for padding.
HISTORY = "history"

# Each training row's candidate sampling probability, `(batch,)`: the
# `TwoTower`'s logQ correction subtracts its log from the logits.
SAMPLING_PROBABILITY = "candidate_sampling_probability"

# The auxiliary regression target of a `TabularModel`, `(batch,)`: present in
# the rows it trains on only.
AUXILIARY = "auxiliary_target"

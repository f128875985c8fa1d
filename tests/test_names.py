import subprocess
import sys

import pytest

from recsys import names
from recsys.models import tabular_model
from recsys.models import two_tower


def test_input_names_are_the_ones_bundles_and_requests_use():
    # Stored models and the service's request field read these strings.
    assert names.HISTORY == "history"
    assert names.SAMPLING_PROBABILITY == "candidate_sampling_probability"
    assert names.AUXILIARY == "auxiliary_target"
    assert two_tower.SAMPLING_PROBABILITY is names.SAMPLING_PROBABILITY
    assert tabular_model.AUXILIARY is names.AUXILIARY


# The issue this module closes: a tabular bundle imported Keras to learn the
# name "history".
@pytest.mark.parametrize(
    "module",
    ["recsys.names", "recsys.data.retrieval_inputs", "recsys.bundles.tabular"],
)
def test_modules_that_need_a_name_do_not_import_keras(module):
    code = f"import sys, {module}; print('keras' in sys.modules)"
    out = subprocess.check_output([sys.executable, "-c", code], text=True)
    assert out.strip() == "False"

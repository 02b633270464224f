"""A check-mode converge of the whole stack on the converged hosts changes nothing and fails nothing."""

import pytest

from redisops_testlib.playbooks import assert_check_mode_changes_nothing


@pytest.mark.converged_state
def test_converge_in_check_mode_changes_nothing(scenario):
    assert_check_mode_changes_nothing(scenario.converge)

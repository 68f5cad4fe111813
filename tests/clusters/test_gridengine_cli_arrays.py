"""Task arrays on a real Grid Engine through its command-line tools (``system = gridengine``,
scripts/clusters.sh start): the same tests as test_drmaa_arrays.py, run against a server of this
executor. The jobs one dispatcher cycle hands over go as one ``qsub -t 1-N`` per resources, and each
task ("NUMBER.TASK") is followed by the one qstat per poll, dismissed (``qdel NUMBER -t TASK``),
deleted from outside, ended by its h_rt, and re-attached after a restart as a job is.

The tests and their ``arrays`` fixture are taken from there: pytest collects them here, where they get this
module's ``gated`` server (qstat behind a gate, so that one cycle hands several jobs over).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.clusters import test_drmaa_arrays as drmaa_arrays
from tests.clusters.test_drmaa import Server
from tests.clusters.test_drmaa import grid_engine as grid_engine  # the fixture, re-used
from tests.clusters.test_drmaa_arrays import Gate, gated_server
from tests.clusters.test_drmaa_arrays import arrays as arrays  # the fixture, on this module's server
from tests.clusters.test_gridengine_cli import config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gated(grid_engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Gate]]:  # type: ignore[no-untyped-def]
    """A server of the command-line executor (no DRMAA library), its qstat behind a gate."""
    with gated_server(tmp_path_factory.mktemp("gecli-arrays"), config()) as started:
        yield started


# In test_drmaa_arrays.py's order, which they rely on (each leaves the node's slots to the next).
test_jobs_of_one_cycle_go_as_one_task_array_per_resources = (
    drmaa_arrays.test_jobs_of_one_cycle_go_as_one_task_array_per_resources
)
test_one_task_dismissed_while_the_others_go_on = drmaa_arrays.test_one_task_dismissed_while_the_others_go_on
test_one_task_deleted_with_qdel_fails_with_the_reason = (
    drmaa_arrays.test_one_task_deleted_with_qdel_fails_with_the_reason
)
test_a_task_over_its_walltime_fails_with_the_h_rt_reason = (
    drmaa_arrays.test_a_task_over_its_walltime_fails_with_the_h_rt_reason
)
test_restart_reattaches_the_tasks_of_an_array = drmaa_arrays.test_restart_reattaches_the_tasks_of_an_array

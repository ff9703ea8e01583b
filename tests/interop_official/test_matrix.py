"""The interop matrix as tests: one test per (direction, case) cell.

Real processes on loopback (see ``matrix.py``): the servers of the module's run start once, and
each direction's client runs all cases once, in parallel with the others; each cell's test then
reports its case's result. Cells that need grpcio skip on PyPy, and only there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.interop.peers import GRPCIO_AVAILABLE, GRPCIO_UNAVAILABLE_REASON
from tests.interop_official.matrix import CASES, DIRECTIONS, Direction, MatrixRun


@pytest.fixture(scope="module")
def matrix() -> Iterator[MatrixRun]:
    run = MatrixRun(DIRECTIONS, CASES)
    try:
        run.start()
        yield run
    finally:
        run.close()


@pytest.mark.time_limit(150)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("direction", DIRECTIONS, ids=str)
def test_interop_cell(matrix: MatrixRun, direction: Direction, case: str) -> None:
    if direction.needs_grpcio and not GRPCIO_AVAILABLE:
        pytest.skip(GRPCIO_UNAVAILABLE_REASON)
    result = matrix.result(direction, case)
    assert result.passed, f"{direction} {case}: {result.reason}"


def test_the_matrix_covers_every_case_of_both_clients() -> None:
    from rpc.interop._cases import CASES as H2RPC_CASES

    assert sorted(H2RPC_CASES) == sorted(CASES)
    if GRPCIO_AVAILABLE:
        from tests.interop_official.grpcio_client import CASES as GRPCIO_CASES

        assert sorted(GRPCIO_CASES) == sorted(CASES)

from __future__ import annotations

import pytest

from tests.train.conftest import one_torch_thread


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield

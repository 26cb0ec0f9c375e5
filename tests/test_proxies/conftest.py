"""One intra-op thread for the proxy tests.

Double backward and float64 convolutions on a busy 2-core machine are about ten times slower
with two OpenMP threads than with one (threads wait for each other); one keeps the suite fast
and its timings steady. The previous setting is restored after each test.
"""
import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""The program's provider spellings agree with the independent port of the provider's Read.

components/provider_values.py (what the program declares) and
tests/support/readback.py (what the read-back test expects) port the same Go
code separately; a value declared in one spelling and read back in the other
would be a change on every `up`.
"""

from __future__ import annotations

import pytest

from components import provider_values
from tests.support import readback


@pytest.mark.parametrize("cores", [0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.25, 4.0, 10.0, 16.0, 0.05, 0.01, 20.05])
def test_declared_cpus_are_what_the_provider_reads_back(cores: float) -> None:
    nano = readback.parse_cpus(str(cores))
    assert provider_values.cpus(cores) == readback.nano_cpus_string(nano)


@pytest.mark.parametrize("seconds", [0, 1, 3, 5, 10, 30, 59, 60, 61, 120, 180, 3599, 3600, 3661, 86400])
def test_declared_durations_are_what_the_provider_reads_back(seconds: int) -> None:
    assert provider_values.duration(seconds) == readback.go_duration_string(seconds * 10**9)


@pytest.mark.parametrize(("cores", "survives"), [(0.5, True), (1.0, True), (0.25, True), (0.05, False), (0.01, False)])
def test_only_cpus_whose_spelling_keeps_their_value_are_accepted(cores: float, survives: bool) -> None:
    assert provider_values.cpus_survive_read_back(cores) is survives

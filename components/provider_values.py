"""Values written the way the Docker provider reads them back.

After every create (and on each refresh) the provider reads a container back
from the engine and stores what it read; Pulumi then diffs the program's
inputs against that state. A value the program writes differently from the
read-back is a change on every `pulumi up`, and for a ForceNew field such as
`cpus` a replacement. So the program declares these fields in the provider's
own spelling. Both functions port the Go code they name; the read-back tests
(tests/support/readback.py, an independent port) check them against each
other and against upstream's test values.

Pinned: pulumi-docker 4.11.x, which bridges kreuzwerker/terraform-provider-docker
v3.9.0 (see docs/provider.md for why that version).
"""

from __future__ import annotations

from fractions import Fraction

_NANO = 10**9


def cpus(value: float) -> str:
    """`cpus` as the provider reads it back: `nanoInt64ToDecimalString(NanoCPUs)`.

    Upstream: internal/provider/helpers.go (nanoInt64ToDecimalString), called
    from resourceDockerContainerRead in resource_docker_container_funcs.go. It
    prints nine decimals and, when the result has exactly nine '0' characters,
    one decimal instead; otherwise it trims trailing zeros: 1 → "1.0",
    0.25 → "0.25", 10 → "10." and 0.05 → "0.1" (a different value, which
    `cpus_survive_read_back` lets the config reject).
    """
    nano = round(Fraction(str(value)) * _NANO)
    if nano == 0:
        return "0"
    nine = _float_string(Fraction(nano, _NANO), 9)
    if nine.count("0") == 9:
        return _float_string(Fraction(nano, _NANO), 1)
    return nine.rstrip("0")


def cpus_survive_read_back(value: float) -> bool:
    """Whether the read-back spelling of `value` still means `value` (0.05 reads back as "0.1")."""
    return Fraction(cpus(value)) == Fraction(str(value))


def _float_string(value: Fraction, decimals: int) -> str:
    """Go's big.Rat.FloatString: round half away from zero to `decimals` places."""
    sign = "-" if value < 0 else ""
    scaled = abs(value) * 10**decimals
    whole, remainder = divmod(scaled.numerator, scaled.denominator)
    if 2 * remainder >= scaled.denominator:
        whole += 1
    text = str(whole).rjust(decimals + 1, "0")
    if decimals == 0:
        return sign + text
    return f"{sign}{text[:-decimals]}.{text[-decimals:]}"


def duration(seconds: int) -> str:
    """Whole seconds as Go's `time.Duration.String()`: 5 → "5s", 120 → "2m0s", 3600 → "1h0m0s".

    Upstream: resourceDockerContainerRead stores the health check's interval,
    timeout and start period with `.String()` (resource_docker_container_funcs.go).
    """
    if seconds < 0:
        raise ValueError(f"a duration of {seconds} s is negative")
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def short_duration(seconds: int) -> str:
    """Whole seconds as the provider reads a service's durations back: 60 → "1m", 90 → "1m30s", 3600 → "1h".

    Upstream: shortDur in resource_docker_service_structures.go (v3.9.0), Go's
    `Duration.String()` with a trailing "m0s" cut to "m" and "h0m" to "h". Every
    duration of docker.Service (update and rollback delay and monitor, health
    check, stop grace period, restart delay and window) goes through it, and
    none has a DiffSuppressFunc: "60s" would be a change on every `up`.
    """
    text = duration(seconds)
    if text.endswith("m0s"):
        text = text[:-2]
    if text.endswith("h0m"):
        text = text[:-2]
    return text


def failure_ratio(value: float) -> str:
    """A service's max_failure_ratio as the provider reads it back: one decimal ("0.0", "0.1").

    Upstream: flattenServiceUpdateOrRollbackConfig, `strconv.FormatFloat(…, 'f', 1, 64)`
    of a float32 (resource_docker_service_structures.go, v3.9.0). Only ratios
    that one decimal spells exactly survive; 0.25 would read back as "0.2".
    """
    text = f"{value:.1f}"
    if Fraction(text) != Fraction(str(value)) or not 0 <= value <= 1:
        raise ValueError(f"a failure ratio of {value} does not survive the read-back ({text!r}); use 0.0, 0.1, ... 1.0")
    return text

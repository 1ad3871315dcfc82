"""Property-based tests (hypothesis, derandomized, bounded): see docs/reliability.md."""

from hypothesis import HealthCheck, settings

# Seeded and bounded everywhere: the same examples on every run and machine, the folder in well under a minute.
settings.register_profile(
    "mall-connector", derandomize=True, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE = settings.get_profile("mall-connector")

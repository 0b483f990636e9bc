import jax
import pytest
from hypothesis import HealthCheck, settings

# Every test runs with strict dtype promotion: an accidental int32 + float32 is an error here.
jax.config.update("jax_numpy_dtype_promotion", "strict")

settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("ci")


@pytest.fixture(params=["float32", "fixed"])
def profile(request):
    return request.param

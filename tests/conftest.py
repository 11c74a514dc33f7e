import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

# The fuzzers draw the same examples on every run, so CI's verdict does not depend on luck;
# HYPOTHESIS_PROFILE=hunt draws new ones (with NAS_FUZZ_EXAMPLES=5000 for a longer hunt).
from hypothesis import settings  # noqa: E402

settings.register_profile("deterministic", derandomize=True)
settings.register_profile("hunt", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

ROOT = Path(__file__).resolve().parent.parent
SPACES = ROOT / "search_spaces"


@pytest.fixture(scope="session", autouse=True)
def _threads():
    import torch

    # two threads on CI's 2 cores; OMP_NUM_THREADS=1 (bench/mutation.py, a busy machine) avoids threads spinning
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))


@pytest.fixture(autouse=True)
def _restore_threads():
    """`nas train` sets torch's thread count for the process it runs (nas/cli/train.py); run in-process by a
    test, it must not carry over to the tests after it."""
    import torch

    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """Many small models: one thread is faster than two, and much faster on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def spaces() -> Path:
    return SPACES


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for every test that needs it (starting Ray costs seconds); the runner reuses it."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


class ZooCounts:
    """Each zoo entry built, run and counted once per session (several test files need the same numbers and a
    full-size fvcore trace costs seconds): `zoo_counts[name]` → (output shape, output finite, Cost)."""

    def __init__(self):
        self._cache: dict = {}

    def __getitem__(self, name: str):
        if name not in self._cache:
            import torch

            import nas
            from nas.cost import count_model

            arch = nas.zoo.load(name)
            model = nas.build(arch, seed=0).eval()
            with torch.no_grad():
                out = model(torch.randn(1, *arch.plan().input_shape))
            self._cache[name] = (tuple(out.shape), bool(torch.isfinite(out).all()),
                                 count_model(model, arch.plan().input_shape).total)
        return self._cache[name]


@pytest.fixture(scope="session")
def zoo_counts() -> ZooCounts:
    return ZooCounts()

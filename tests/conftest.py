import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# OpenMP threads that wait by spinning burn the other core whenever two processes share the machine (xdist's two
# workers, a Ray trial beside its driver, the hostile corpus's two shards): measured 3× slower. Passive threads
# sleep. Set before torch loads its OpenMP runtime; child processes inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The fuzzers draw the same examples on every run, so CI's verdict does not depend on luck;
# HYPOTHESIS_PROFILE=hunt draws new ones (with NAS_FUZZ_EXAMPLES=5000 for a longer hunt).
from hypothesis import settings  # noqa: E402

settings.register_profile("deterministic", derandomize=True)
settings.register_profile("hunt", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

ROOT = Path(__file__).resolve().parent.parent
SPACES = ROOT / "search_spaces"


# Under pytest-xdist (`make test` runs `-n auto`) a test module stays on one worker, so its module fixtures (a Ray
# cluster, a PostgreSQL server, the hostile corpus's outcomes) are built once. The modules that start Ray clusters,
# servers or several searches at once run one after another on one worker, as they would alone, and first: they are
# the longest unit. The golden and zoo tests share the session's zoo counts.
SERVICE_MODULES = ("test_search", "test_cluster", "test_postgres", "test_ddp", "test_sweep", "test_shared_study")
SHARED_UNITS = {**{m: "services" for m in SERVICE_MODULES}, "test_golden": "zoo counts", "test_zoo": "zoo counts"}


def work_unit(nodeid: str) -> str:
    module = Path(nodeid.split("::", 1)[0]).stem
    return SHARED_UNITS.get(module, module)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: work_unit(item.nodeid) != "services")  # stable: the rest keep their order


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, when it is installed
def pytest_xdist_make_scheduler(config, log):
    """Whole work units per worker (xdist's `loadgroup` marks are ignored by pytest ≥ 9.2: pytest-xdist #1386)."""
    if config.getvalue("dist") not in ("load", "loadscope", "loadfile", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # collection order: the services first
    return WorkUnitScheduling(config, log)


@pytest.fixture(scope="session", autouse=True)
def _threads():
    import torch

    from nas.train import available_cpus

    # the cores shared among xdist's workers, at most two each (the tests' models are small); OMP_NUM_THREADS
    # (bench/mutation.py, a busy machine) overrides
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", max(1, min(2, available_cpus() // workers)))))


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

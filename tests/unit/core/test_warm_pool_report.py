"""What a worker publishes about its warm pools in its heartbeat (`Runtime.warm_pool_idle`), which
the dashboard's fleet page shows."""
from __future__ import annotations


class _Pool:
    def __init__(self, idle: int):
        self.idle = idle

    def idle_count(self) -> int:
        return self.idle

    def close(self) -> None:
        pass


class _NotAPool:
    def close(self) -> None:
        pass


def test_warm_pool_idle_counts_each_pool_extension_by_name(make_config):
    from cronium.core.runtime import Runtime

    runtime = Runtime(make_config())
    assert runtime.warm_pool_idle() == {}
    sidecars = runtime.extension("sidecar-pool", lambda: _Pool(2))
    runtime.extension("slots", lambda: _Pool(0))
    runtime.extension("something-else", _NotAPool)
    assert runtime.warm_pool_idle() == {"sidecar-pool": 2, "slots": 0}
    sidecars.idle = 3  # read at each beat, not cached
    assert runtime.warm_pool_idle()["sidecar-pool"] == 3

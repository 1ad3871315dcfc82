"""Start every registered carrier's simulator (``mall-connector sandbox --carriers``, the demo) and say how to
point ``[carriers.<name>]`` at them."""

from __future__ import annotations

from carriers import load_simulator, registry


def start_all(host: str = "127.0.0.1") -> dict:
    """{name: started simulator} on free ports of ``host``, one per registered carrier that has a simulator."""
    started = {}
    try:
        for name, cls in registry().items():
            if cls.simulator:
                started[name] = load_simulator(name)(host=host, port=0).start()
    except BaseException:
        stop_all(started)
        raise
    return started


def stop_all(sims: dict) -> None:
    for sim in sims.values():
        sim.stop()


def config_snippet(sims: dict) -> str:
    """The [carriers.<name>] tables that point the connector at the simulators (their test credentials)."""
    out = []
    for name, sim in sims.items():
        out.append(f"[carriers.{name}]")
        out.append(f'base_url = "{sim.url}"')
        for key in registry()[name].secret_keys:
            out.append(f'{key} = "{getattr(sim, key)}"')
        out.append("min_interval_s = 0")
    return "\n".join(out)

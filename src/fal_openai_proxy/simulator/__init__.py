"""A fal-compatible HTTP server for tests, benchmarks and ``--simulate`` mode.

``create_simulator_app()`` returns a raw ASGI app; its live :class:`SimulatorState` (config,
request log, attempt counters) is the ``simulator_state`` attribute of that app.
"""

from .app import SimulatorApp, create_simulator_app
from .config import SimulatorConfig
from .directives import Directives
from .server import SimulatorThread, start_simulator_thread
from .state import SimulatorState

__all__ = [
    "Directives",
    "SimulatorApp",
    "SimulatorConfig",
    "SimulatorState",
    "SimulatorThread",
    "create_simulator_app",
    "start_simulator_thread",
]

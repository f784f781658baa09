"""``ingest simulate``: realistic synthetic mesh telemetry, published to Kafka (SPEC section 2).

``Simulator`` is the pure, deterministic generator (same seed and start, same bytes);
``run_simulation`` paces it against the wall clock and publishes with aiokafka.
"""

from ingest.simulate.generator import Simulator
from ingest.simulate.malformed import REASON_CYCLE
from ingest.simulate.options import KIND_TOPIC, SimRecord, SimulationOptions
from ingest.simulate.publish import run_simulation

__all__ = [
    "KIND_TOPIC",
    "REASON_CYCLE",
    "SimRecord",
    "SimulationOptions",
    "Simulator",
    "run_simulation",
]

"""Event sources: the SaaS simulator, real-dataset converters and the Kafka replayer."""

from simulator.generator import Simulator, generate

__all__ = ["Simulator", "generate"]

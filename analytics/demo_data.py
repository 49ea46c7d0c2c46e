"""The demo data is the sandbox's simulated world (``sandbox.world.simulation``), written straight into a
merchant's raw schema; the sandbox's Airbyte writes the same world incrementally on each sync."""

from sandbox.world.simulation import generate_demo_data

__all__ = ["generate_demo_data"]

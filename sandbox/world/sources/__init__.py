"""The simulation's emitters, one module per source; each declares the columns it writes (``sandbox.world.columns``)."""

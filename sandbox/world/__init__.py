"""The sandbox's simulated world: deterministic merchants whose records the providers serve.

``simulation`` is the day-by-day merchant simulation (the demo data writes it straight into a raw
schema, ``analytics.demo_data``), its rows written by one emitter per source (``sources``), each naming
the columns it writes (``columns``, checked against ``analytics.raw_schema`` at import); ``world``
answers which records became visible up to a simulated clock, for the Airbyte stand-in's syncs
(``sandbox.providers.airbyte_worker``).
"""

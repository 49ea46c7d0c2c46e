"""Ingestion: the pipeline that brings each connected store's data into its raw schema, through Airbyte.

A separate app rather than part of `connectors/`: `connectors` owns the merchant's credentials for each
provider (connecting, encrypting, refreshing, revoking them), while Airbyte is not a provider a merchant
connects — it is the deployment's ingestion engine, one set of application credentials for the whole
product, which this app drives with those merchants' credentials (sources, connections, sync jobs).
Depending on `connectors` and never the other way round keeps the credential lifecycle free of any
knowledge of how data is moved.

Airbyte's public API and its errors are in shared/INGESTION.md §1; `ingestion.client` speaks it, and
the tests drive the sandbox's stand-in of it (`sandbox/providers/airbyte.py`).

- `sources`: per provider, the Airbyte source (type, configuration from the decrypted credential, raw-table
  prefix, the streams the marts read); adding a provider is one entry.
- `models`: the deployment's workspace and destination, a `Pipeline` (source + connection + schedule) per
  credential and per store-owned source (exchange rates, our key: `PipelineKind`), a `SyncJob` per Airbyte job.
- `services`: the pipeline follows its credential (told by `connectors.services` after commit), a store's
  own pipeline follows the store; the sweeper triggers due syncs (staggered; history syncs capped), attaches
  on 409, polls, retries and alerts (docs/async.md, "ingestion"), and tears down a deleted store's pipelines.
- `views`: Airbyte's failure and success notifications (§1.7) — the only place a failure's reason comes
  from; a source's config_error makes the credential need reconnecting.
"""

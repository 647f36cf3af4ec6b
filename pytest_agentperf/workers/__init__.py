"""One run's load split over several processes or hosts through execnet (``workers=N``,
``--agentperf-workers=SPEC``).

``controller`` (this process: gateways, the two-phase start, watching, merging), ``remote``
(the worker process), ``split`` (each worker's share of the load), ``transfer`` (sending the
agent without pickle), ``wire`` (the raw call logs sent back) and ``merge`` (one run from
them). ``spec`` parses gateway specs without importing execnet. Nothing here imports execnet
until a run is split.
"""

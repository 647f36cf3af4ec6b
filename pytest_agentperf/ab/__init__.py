"""A/B comparison in one run: arms interleaved in randomized blocks, compared pairwise.

``arms`` checks the arms and the comparison's own settings; ``schedule`` lays out the
shuffled blocks and the one agent that dispatches each call to its arm; ``split`` cuts the
interleaved run back into one raw run per arm; ``paired`` holds the statistics (a bootstrap
over blocks, paired across arms); ``result`` the ``CompareResult`` and the comparison's
budgets; ``run`` ties them together for ``agentperf.compare``.
"""

from __future__ import annotations

from .paired import COMPARED_METRICS, CONFIDENCE
from .result import CompareResult, describe_ratio
from .run import DEFAULT_NAME, ComparePlan, arm_fields, assemble, plan_compare, raise_if_broken

__all__ = [
    "COMPARED_METRICS",
    "CONFIDENCE",
    "DEFAULT_NAME",
    "ComparePlan",
    "CompareResult",
    "arm_fields",
    "assemble",
    "describe_ratio",
    "plan_compare",
    "raise_if_broken",
]

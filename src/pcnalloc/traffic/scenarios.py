"""Scenario families: grid events scheduled inside every episode (DESIGN §3).

Per-hour event rates almost never fire inside a 1000-request episode (a few minutes of
simulated time), so evaluation and training run on named families whose events are placed
*inside each episode's window*: a fixed number of grid faults and fiber cuts per episode, at
times drawn uniformly from a fraction of the episode's expected span and at places drawn from
the env's own seeded generator. Packaged families (``pcnalloc/data/scenarios/*.yaml``):

- ``normal``: a calm day; no scheduled events and near-zero background event rates.
- ``storm``: several grid faults, each opening an emergency window whose neighbourhood sends
  bursts of PMU, fault-record and inspection-video requests.
- ``fiber-cut``: cuts of the busiest links (most flows), with restoration requests for the
  interrupted flows and 1+1 switch-over for protected ones.
- ``mixed``: faults and cuts together.

A user passes a family by name or a YAML file of the same schema (:class:`Scenario`).
"""

from pcnalloc.config import Scenario, list_scenarios, load_scenario

__all__ = ["Scenario", "list_scenarios", "load_scenario"]

"""mcexplore: a Monte Carlo stress explorer for the 2018 page-migration vs fault-waiter race.

Layers, data flowing one way: scenario (typed config, units, distributions) -> engines (numpy,
native, cupy; one interface) -> statistics -> sweeps, plots and the CLI. Importing this package
imports neither cupy nor any compiled extension.
"""

__version__ = "0.1.0"

"""The peers ostinato is compared with, each run in its own virtual environment.

``protocol.py`` is what a peer script and the harness agree on; ``<peer>/bench.py`` and
``<peer>/requirements.txt`` are one peer; ``runner.py`` creates the environments and runs the
scripts for ``benchmarks/run.py --peers``.
"""

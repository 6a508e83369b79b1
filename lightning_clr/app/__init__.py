"""The Hydra app on top of the library (the ``[app]`` extra): ``clr-train``, ``clr-range-test``,
``clr-plot-policy``. Nothing here is public API: use the commands, or the library.
"""

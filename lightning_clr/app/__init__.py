"""The Hydra app on top of the library: ``clr-train``, ``clr-range-test``, ``clr-plot-policy``.

It composes ``conf/`` (shipped in the wheel as ``lightning_clr/conf``), checks the config before torch is
imported (:mod:`~lightning_clr.app.checks`), builds the data set, model, optimizer and trainer
(:mod:`~lightning_clr.app.training`) and runs them, alone, as DDP ranks or as a sweep on SLURM. It needs the
``[app]`` extra (Hydra, OmegaConf, TensorBoard, matplotlib, rich, mnist1d, scikit-learn); the library below
it (:mod:`lightning_clr`) imports none of them. Nothing here is public API: use the commands, or the
library.
"""

"""Executors: one interface (``base.Executor``), several implementations.

``local`` is the warm pool of worker processes (``worker`` is what runs in them, ``handle`` the
driver's handle on one, ``takeback`` how the pool asks a worker for attempts it holds); ``inline`` runs
attempts in a thread of the driver, for fast engine tests; ``dask`` runs them on a Dask cluster (the
only importer of ``distributed``), chosen by ``choice`` from ``executor=`` or ``$ZART_EXECUTOR``.
Each keeps the attempts it has not started in a ``taskqueue.TaskQueue``, which also keeps the limits
of ``zart.Queue``.
What a step prints is captured where it runs (``capture``; ``fdcapture`` in a pool worker, ``ticker``
where steps run on threads).
"""

"""Executors: one interface (``base.Executor``), several implementations.

``local`` is the warm pool of worker processes (``worker`` is what runs in them); ``inline`` runs
attempts in a thread of the driver, for fast engine tests.
"""

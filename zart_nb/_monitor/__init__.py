"""The monitor endpoint: the only package that opens sockets or speaks JSON for the monitor.

While an engine holds a journal it serves reads, a coalesced event stream and control actions on a Unix
socket (``server``), advertised in an owner-only file beside the journal (``endpoint``); other processes
read through ``client.MonitorClient``, a second :class:`JournalReader`. The wire format (``protocol``) is
JSON bytes over ``multiprocessing.connection`` with an authkey; nothing received is ever unpickled.
"""

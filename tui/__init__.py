"""zart-tui: a live terminal monitor of zart_nb journals (Textual).

It reads through ``zart_nb``'s public API only: the monitor client of a live engine, or the journal
file for a moment; it never unpickles. The only package of zart_nb's distribution that imports textual.
"""

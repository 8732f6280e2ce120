"""jaxnn's experiments: each module reproduces claims of the course notes.

Run them all with ``python -m experiments`` from the repository root; see ``--help``.
"""

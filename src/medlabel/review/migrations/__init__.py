"""Alembic migrations of the annotation store (run by :func:`medlabel.review.store.open_store`).

New revision (developers): ``alembic -c <(medlabel-internal) revision`` is not needed; write a
file under ``versions/`` with ``revision``/``down_revision`` and ``upgrade``/``downgrade``.
"""

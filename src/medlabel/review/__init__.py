"""Human in the loop: the annotation store and active learning.

:mod:`.store` keeps items, model predictions, human annotations, review states, users and an
audit log (SQLite by default, PostgreSQL by URL; schema migrated with Alembic);
:mod:`.active` chooses what a person should review next.
"""

"""The main job: annotate a whole archive with classification and segmentation models.

See :func:`medlabel.annotate.job.annotate` for the entry point, :mod:`.items` for how an
archive is split into items, :mod:`.models` for which model applies to which item,
:mod:`.outputs` for the files written, and :mod:`.manifest` for resumability.
"""

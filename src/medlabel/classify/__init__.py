"""Image classification: CNNs and classic models behind one bundle interface.

* :mod:`~medlabel.classify.train` — the CNN training loop (:func:`train_classifier`);
* :mod:`~medlabel.classify.classic` — features + scikit-learn (:func:`train_classic`);
* :mod:`~medlabel.classify.recipe` — ``--model auto`` (:func:`auto_config`);
* :mod:`~medlabel.classify.bundle` — saving and loading model bundles (ONNX inference);
* :mod:`~medlabel.classify.predict` and :mod:`~medlabel.classify.evaluation` — batch
  prediction and evaluation reports.

Heavy modules (torch) load on first use of these submodules, not on ``import medlabel``.

Example:
    >>> from medlabel.classify.networks import NETWORKS
    >>> "compact" in NETWORKS and "resnet18" in NETWORKS
    True
"""

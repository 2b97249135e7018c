"""Lesson 10: the article's Oxford-IIIT Pet classifier, rebuilt in plain PyTorch.

The article's "ten lines" of fastai v1, piece by piece:

- :mod:`.data`: download (md5-checked, resumable), safe tar extraction, the file-name
  regex labels, the 20 % random split, decoding once into a uint8 cache;
- :mod:`.synthetic`: a pets-like folder for machines without the real archive;
- :mod:`.model`: ResNet34 with torchvision's key names, fastai's head, the frozen body;
- :mod:`.augment`: fastai's augmentations as one ``grid_sample`` per batch,
  on the device;
- :mod:`.train`: one-cycle Adam, our LSCE, bf16, DDP, checkpoints and the metrics;
- :mod:`.command`: ``lsce pets`` (also ``python -m lsce_examples.pets``).

Importing the package imports nothing;
:mod:`.data` and :mod:`.synthetic` are torch-free.
"""

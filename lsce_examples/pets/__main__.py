"""``python -m lsce_examples.pets`` (and ``torchrun ... -m lsce_examples.pets``)."""

from lsce_examples.pets.command import main

if __name__ == "__main__":
    raise SystemExit(main())

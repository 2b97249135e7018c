"""``python -m lsce_scratch.pets`` (and ``torchrun ... -m lsce_scratch.pets``)."""

from lsce_scratch.pets.command import main

if __name__ == "__main__":
    raise SystemExit(main())

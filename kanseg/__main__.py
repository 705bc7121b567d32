"""`python -m kanseg ...` (also what `torchrun -m kanseg` runs)."""

from kanseg.cli import main

if __name__ == "__main__":
    main()

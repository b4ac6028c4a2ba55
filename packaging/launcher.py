"""Entry point of the packaged program (the same CLI as `cascade-studio` from pip)."""

import multiprocessing
import sys

from cascade_studio.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())

"""python -m cascade_studio.trainer JOB_DIR"""

import os
import sys

# Nothing is downloaded at run time: the base model is a local folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m cascade_studio.trainer JOB_DIR", file=sys.stderr)
        sys.exit(2)
    from cascade_studio.trainer.train import main

    sys.exit(main(sys.argv[1]))

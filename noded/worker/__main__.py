"""``python -m noded.worker --spec JSON``: host one node (see ``noded.worker.main``)."""

import sys

from noded.worker.main import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m nodeworker --spec JSON``: host one node (see ``nodeworker.worker``)."""

import sys

from nodeworker.worker import main

if __name__ == "__main__":
    sys.exit(main())

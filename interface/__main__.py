import sys

from optinv.cli import main

sys.exit(main())

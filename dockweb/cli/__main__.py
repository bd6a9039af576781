import sys

from dockweb.cli.main import main

sys.exit(main())

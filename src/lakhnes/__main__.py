import sys

from lakhnes.cli import main

sys.exit(main())

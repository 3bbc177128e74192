import sys

from modelplatform.cli import main

sys.exit(main())

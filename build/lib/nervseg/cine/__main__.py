"""python -m nervseg.cine"""

from nervseg.cine.cli import main

raise SystemExit(main())

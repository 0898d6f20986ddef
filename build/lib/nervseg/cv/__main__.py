"""python -m nervseg.cv"""

from nervseg.cv.cli import main

raise SystemExit(main())

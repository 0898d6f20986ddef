"""python -m nervseg.train"""

from nervseg.train.run import main

raise SystemExit(main())

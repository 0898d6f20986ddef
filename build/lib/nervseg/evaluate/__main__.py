"""python -m nervseg.evaluate"""

from nervseg.evaluate.run import main

raise SystemExit(main())

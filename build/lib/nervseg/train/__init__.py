"""Training: the recipe as a TrainConfig, the loop, the card it writes, and the queue that runs the plan.

    python -m nervseg.train --help
    python -m nervseg.train.queue status
"""

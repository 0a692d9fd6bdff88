"""Small helpers every stage uses.

    io.py         atomic file output: a reader never sees a half-written artifact
    gradients.py  lists of gradients and their sums across tf.distribute replicas
"""

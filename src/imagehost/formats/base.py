"""What the container modules share: the Corrupt error and the frame ceiling.

Kept apart from the package's __init__ (which imports every container module) so the container
modules can import it without a cycle.
"""


class Corrupt(Exception):
    """Our own container parsers found the bytes broken (images.py turns it into corrupt_image)."""


# The largest MAX_IMAGE_PIXELS and MAX_FRAMES config.py accepts. No accepted animation has more
# frames, so an AVIF track claiming more samples is refused before a list of that many is built;
# check/reindex read stored files under these ceilings (they were accepted under a limit already).
CEILING_PIXELS = 1_000_000_000
CEILING_FRAMES = 100_000

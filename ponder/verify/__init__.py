from ponder.verify.math import math_equal

__all__ = ["math_equal"]

from ponder.verify.math import math_equal

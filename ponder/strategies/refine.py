"""(being written)"""
from ponder.strategies.base import StrategyError

def refine(backend, prompt, *, n=None, sampling=None, budget=None, task=None, example=None, scorer=None):
    raise StrategyError("strategy refine is not implemented yet")


"""(being written)"""
from ponder.strategies.base import StrategyError

def router(backend, prompt, *, n=None, sampling=None, budget=None, task=None, example=None, scorer=None):
    raise StrategyError("strategy router is not implemented yet")


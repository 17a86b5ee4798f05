"""(being written)"""
from ponder.strategies.base import StrategyError

def tools(backend, prompt, *, n=None, sampling=None, budget=None, task=None, example=None, scorer=None):
    raise StrategyError("strategy tools is not implemented yet")


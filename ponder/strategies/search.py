"""(being written)"""
from ponder.strategies.base import StrategyError

def beam(backend, prompt, *, n=None, sampling=None, budget=None, task=None, example=None, scorer=None):
    raise StrategyError("strategy beam is not implemented yet")

def mcts(backend, prompt, *, n=None, sampling=None, budget=None, task=None, example=None, scorer=None):
    raise StrategyError("strategy mcts is not implemented yet")


"""Health alarms for RL runs: named conditions over the per-step metrics that mean a run is not
learning, or is learning the wrong thing.

``HealthMonitor`` is a transformers ``TrainerCallback``; it reads each training log (TRL's keys
and ponder's ``ponder/*`` ones), and when an alarm condition holds it logs a warning, adds the
alarm's name to the step's record (``alarms`` in ``metrics.jsonl``) and, with
``on_alarm="stop"``, saves a checkpoint and stops the run. Each alarm fires once per run.

The alarms (``ALARMS``; thresholds are ``HealthConfig`` fields):

* ``no_signal``: the share of groups whose rewards are all equal (TRL's ``frac_reward_zero_std``)
  is at least ``zero_spread`` for ``patience`` steps -- GRPO's advantages are then zero, nothing
  is learned ("no learning signal: every completion scored the same").
* ``no_think_close``: no completion closed ``</think>`` for ``patience`` steps.
* ``entropy_collapse``: the policy entropy fell below ``entropy_floor`` times its first value.
* ``reward_hacking``: over the last ``window`` steps the format reward rose by at least
  ``hack_delta`` while accuracy fell by at least ``hack_delta`` (the signature of a model that
  learns the shape and not the answers).
* ``length_blowup``: at least ``clipped_share`` of the completions hit the length cap for
  ``patience`` steps, or the mean length doubled within ``window`` steps.
* ``kl_spike``: the KL to the reference jumped above ``kl_factor`` times its running median
  (and above ``kl_min``).
* ``looped``: at least ``looped_share`` of the rollouts repeat an n-gram cycle inside ``<think>``
  (``ponder/looped_share``, ``ponder.format.loops``).
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from typing import Callable

from ponder.config import ConfigError, option

log = logging.getLogger("ponder.train.health")


@dataclass
class HealthConfig:
    """Thresholds of the health alarms."""

    patience: int = option(3, "Consecutive steps a condition must hold before its alarm fires.")
    zero_spread: float = option(0.95, "no_signal: share of groups whose rewards are all equal.")
    entropy_floor: float = option(0.1, "entropy_collapse: entropy below this share of its first value.")
    window: int = option(5, "Steps over which trends (reward hacking, length growth) are measured.")
    hack_delta: float = option(0.1, "reward_hacking: the rise of format and the fall of accuracy over the window.")
    clipped_share: float = option(0.5, "length_blowup: share of completions cut at the length cap.")
    kl_factor: float = option(5.0, "kl_spike: KL above this multiple of its running median.")
    kl_min: float = option(0.05, "kl_spike: and above this absolute value.")
    looped_share: float = option(0.2, "looped: share of rollouts caught in a repeated n-gram cycle.")

    def __post_init__(self) -> None:
        if self.patience < 1 or self.window < 2:
            raise ConfigError("health: patience must be >= 1 and window >= 2")


def _get(row: dict, *keys: str) -> float | None:
    for k in keys:
        v = row.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


class Monitor:
    """The alarm logic over a stream of metric rows (no trainer needed: tests drive it directly)."""

    def __init__(self, cfg: HealthConfig | None = None):
        self.cfg = cfg or HealthConfig()
        self.rows: list[dict] = []
        self.fired: dict[str, str] = {}
        self.streak: dict[str, int] = {}

    def _held(self, name: str, cond: bool) -> bool:
        self.streak[name] = self.streak.get(name, 0) + 1 if cond else 0
        return self.streak[name] >= self.cfg.patience

    def check(self, row: dict) -> list[tuple[str, str]]:
        """Feed one step's metrics; returns the alarms that fire at this step as (name, message)."""
        self.rows.append(row)
        c, out = self.cfg, []
        for name, test in ALARMS.items():
            if name in self.fired:
                continue
            msg = test(self, row, c)
            if msg:
                self.fired[name] = msg
                out.append((name, msg))
        return out

    def series(self, *keys: str) -> list[float]:
        return [v for r in self.rows[-self.cfg.window:] if (v := _get(r, *keys)) is not None]


def _no_signal(m: Monitor, row: dict, c: HealthConfig) -> str | None:
    z = _get(row, "frac_reward_zero_std", "zero_spread")
    if m._held("no_signal", z is not None and z >= c.zero_spread):
        return (f"no learning signal: every completion scored the same in {z:.0%} of the groups for {c.patience} "
                "steps (advantages are zero; try an easier task, more generations or a partial-credit reward)")
    return None


def _no_think_close(m: Monitor, row: dict, c: HealthConfig) -> str | None:
    share = _get(row, "ponder/think_share", "think_share")
    if m._held("no_think_close", share is not None and share == 0):
        return f"no completion closed </think> for {c.patience} steps (the format reward cannot pay; check --thinking)"
    return None


def _entropy_collapse(m: Monitor, row: dict, c: HealthConfig) -> str | None:
    ent = [v for r in m.rows if (v := _get(r, "entropy")) is not None]
    if len(ent) >= 2 and ent[0] > 0 and ent[-1] < c.entropy_floor * ent[0]:
        return f"entropy collapse: policy entropy fell from {ent[0]:.3f} to {ent[-1]:.3f}"
    return None


def _reward_hacking(m: Monitor, row: dict, c: HealthConfig) -> str | None:
    if len(m.rows) < c.window:
        return None
    window = m.rows[-c.window:]
    fmt = [v for r in window if (v := _get(r, "rewards/format/mean", "rewards/format")) is not None]
    acc = [v for r in window if (v := _get(r, "ponder/accuracy", "accuracy")) is not None]
    if len(fmt) >= 2 and len(acc) >= 2 and fmt[-1] - fmt[0] >= c.hack_delta and acc[0] - acc[-1] >= c.hack_delta:
        return (f"reward hacking: the format reward rose {fmt[0]:.2f} -> {fmt[-1]:.2f} while accuracy fell "
                f"{acc[0]:.2f} -> {acc[-1]:.2f} over {c.window} steps")
    return None


def _length_blowup(m: Monitor, row: dict, c: HealthConfig) -> str | None:
    clipped = _get(row, "completions/clipped_ratio", "clipped_ratio")
    if m._held("length_blowup", clipped is not None and clipped >= c.clipped_share):
        return f"length blow-up: {clipped:.0%} of the completions hit the length cap for {c.patience} steps"
    lengths = m.series("completions/mean_length", "completion_length")
    if len(lengths) >= c.window and lengths[0] > 0 and lengths[-1] >= 2 * lengths[0]:
        return f"length blow-up: mean completion length doubled ({lengths[0]:.0f} -> {lengths[-1]:.0f}) in {c.window} steps"
    return None


def _kl_spike(m: Monitor, row: dict, c: HealthConfig) -> str | None:
    kl = _get(row, "kl")
    past = [v for r in m.rows[:-1] if (v := _get(r, "kl")) is not None]
    if kl is not None and len(past) >= 2:
        med = statistics.median(past)
        if kl > c.kl_min and kl > c.kl_factor * max(med, 1e-9):
            return f"KL spike: {kl:.3f} against a running median of {med:.3f}"
    return None


def _looped(m: Monitor, row: dict, c: HealthConfig) -> str | None:
    share = _get(row, "ponder/looped_share", "looped_share")
    if share is not None and share >= c.looped_share:
        return f"looped rollouts: {share:.0%} of the rollouts repeat a cycle inside <think>"
    return None


#: name -> test(monitor, row, config) -> message | None
ALARMS: dict[str, Callable[[Monitor, dict, HealthConfig], str | None]] = {
    "no_signal": _no_signal, "no_think_close": _no_think_close, "entropy_collapse": _entropy_collapse,
    "reward_hacking": _reward_hacking, "length_blowup": _length_blowup, "kl_spike": _kl_spike, "looped": _looped,
}


def HealthMonitor(cfg: HealthConfig | None = None, on_alarm: str = "warn"):
    """A ``TrainerCallback`` running ``Monitor`` on every training log (see the module docstring).

    Put it before the metrics logger in the callback list: it adds ``alarms`` to the log dict."""
    from transformers import TrainerCallback

    if on_alarm not in ("warn", "stop"):
        raise ConfigError(f"on_alarm must be warn or stop, got {on_alarm!r}")
    monitor = Monitor(cfg)

    class _Health(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if not logs or "reward" not in logs:
                return
            fired = monitor.check(dict(logs))
            if not fired:
                return
            logs["alarms"] = [name for name, _ in fired]
            for name, msg in fired:
                if state.is_world_process_zero:
                    log.warning("step %d: %s", state.global_step, msg)
            if on_alarm == "stop":
                control.should_save = True
                control.should_training_stop = True

    cb = _Health()
    cb.monitor = monitor  # type: ignore[attr-defined]
    return cb


__all__ = ["ALARMS", "HealthConfig", "HealthMonitor", "Monitor"]

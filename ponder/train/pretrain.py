"""Stage 1, ``ponder train pretrain``: a tiny base model on a synthetic corpus of task problems.

The corpus is the train split of one or more tasks, each problem rendered as the prompt every
stage uses (``common.prompt_for``) followed by one of two completions:

* with a worked solution (share ``solution_share``): ``<think>column steps</think>answer``;
* without one: ``<think></think>answer`` -- the answer alone, an empty think block.

So the base model knows both behaviours, and which one it picks is decided by a single token
after ``<think>``. Answering directly is much less accurate for a tiny model than working
column by column; that is the headroom GRPO can exploit by learning *to reason* (the R1 finding
that RL lengthens reasoning, on a scale a CPU can show). ``steps`` sets how far the base model is
trained; a partly trained start leaves room for RL (docs/training.md).

The loop is ponder's own (not transformers' Trainer): one fp32 AdamW step per batch, linear
warm-up then cosine decay to 10% of ``lr``, gradient clipping at 1.0. It is short and checkpoints
exactly what a resume needs (weights, optimizer, scheduler position). A batch mixes answer-only
examples (~20 tokens) with worked ones (~70), so one right-padded forward spends about half its
compute on padding; the loop instead runs the batch as a few forwards of similar-length rows
(``length_groups``) and sums their token-weighted losses: the same gradient in about half the
time (bench/pretrain.py).
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ponder.config import ConfigError, RunOptions, check_choice, option, shared
from ponder.format import THINK_CLOSE, THINK_OPEN, format_completion, parse
from ponder.train import common
from ponder.train.checkpoint import STATE_FILE, atomic_dir, checkpoints, last_complete_checkpoint

log = logging.getLogger(__name__)


@dataclass
class PretrainConfig(RunOptions):
    """Options of ``ponder train pretrain``."""

    out: str = shared("out", "runs/pretrain")
    save_every: int = shared("save_every", 100)
    task: object = option(
        "addition:digits=3",
        "Task spec(s) whose train split is the corpus: one spec, a YAML list, or specs separated by ';'.",
    )
    preset: object = option("micro", "Model size: nano (~1M), micro (~3M), mini (~10M) or a mapping of ModelConfig fields.")
    steps: int = option(600, "Optimizer steps (fewer leaves a partly trained base model with headroom for RL).")
    lr: float = option(2e-3, "Peak learning rate (AdamW, linear warm-up then cosine decay to 10%).")
    warmup_steps: int = shared("warmup_steps", 30)
    anneal: float = option(
        1.0, "How far the cosine decay has gone at the last step: 1 = fully annealed; 0.6 stops mid-decay, a "
        "partly trained base whose reasoning GRPO can still improve (the measured recipe, docs/training.md).")
    weight_decay: float = option(0.01, "AdamW weight decay.")
    batch_size: int = option(32, "Sequences per optimizer step.")
    seq_len: int = option(192, "Longest sequence in tokens (longer examples are cut).")
    n_examples: int = option(4000, "Corpus size: problems drawn from the train split(s), shared between tasks.")
    solution_share: float = option(
        0.5, "Share of corpus problems shown with a worked solution in <think>; the rest have an empty think block."
    )
    prompt_loss: bool = option(
        False, "Also train on prompt tokens (the question's digits are random, so their loss is pure noise)."
    )
    template: str = shared("template", "think")
    system: str = shared("system", "")
    vocab_size: int = option(512, "Tokenizer vocabulary (trained on the corpus when out/tokenizer does not exist).")
    tokenizer: str | None = option(None, "Use this tokenizer directory instead of training one.")

    def __post_init__(self) -> None:
        common.positive(self, ("steps", "lr", "batch_size", "seq_len", "n_examples", "save_every"), "pretrain")
        if not 0.0 <= self.solution_share <= 1.0:
            raise ConfigError(f"pretrain.solution_share must be in [0, 1], got {self.solution_share}")
        check_choice(self, "template", ("think", "r1-zero"), "pretrain.")
        if not 0 < self.anneal <= 1:
            raise ConfigError(f"pretrain.anneal must be in (0, 1], got {self.anneal}")
        if self.warmup_steps < 0:
            raise ConfigError(f"pretrain.warmup_steps must be >= 0, got {self.warmup_steps}")


# --------------------------------------------------------------------------- corpus


def answer_only(completion: str, template: str = "think") -> str:
    """The same completion with an empty think block: ``<think></think>answer``."""
    return format_completion("", parse(completion).answer, template)


def build_corpus(cfg: PretrainConfig) -> list[tuple[str, str]]:
    """``(question, completion)`` pairs: ``n_examples`` problems taken round-robin from the tasks."""
    from ponder.tasks import get_task

    specs = common.task_specs(cfg.task)
    per_task = math.ceil(cfg.n_examples / len(specs))
    streams = []
    for spec in specs:
        task = get_task(spec)
        examples = []
        for ex in task.examples("train"):
            examples.append(ex)
            if len(examples) >= per_task:
                break
        if not examples:
            raise ConfigError(f"pretrain: task {spec!r} has no train examples")
        streams.append((task, examples))
    rng = random.Random(f"pretrain-corpus:{cfg.seed}")
    pairs = []
    for i in range(max(len(exs) for _, exs in streams)):
        for task, examples in streams:
            if i < len(examples) and len(pairs) < cfg.n_examples:
                ex = examples[i]
                full = task.reference_completion(ex, cfg.template)
                worked = rng.random() < cfg.solution_share
                pairs.append((ex["prompt"], full if worked else answer_only(full, cfg.template)))
    return pairs


def _tokenizer(cfg: PretrainConfig, out: Path, pairs: list[tuple[str, str]]):
    """Load ``cfg.tokenizer`` or ``out/tokenizer``, else train one on the corpus and keep it there."""
    from transformers import AutoTokenizer

    from ponder.models import train_tokenizer

    src = Path(cfg.tokenizer) if cfg.tokenizer else out / "tokenizer"
    if (src / "tokenizer.json").is_file():
        tok = AutoTokenizer.from_pretrained(str(src), local_files_only=True)
    elif cfg.tokenizer:
        raise ConfigError(f"pretrain.tokenizer: {src} has no tokenizer.json")
    else:
        texts = [common.prompt_for(q, None, system=cfg.system) + c for q, c in pairs]
        with atomic_dir(src) as tmp:
            train_tokenizer(texts, vocab_size=cfg.vocab_size, out_dir=tmp)
        tok = AutoTokenizer.from_pretrained(str(src), local_files_only=True)
    for tag in (THINK_OPEN, THINK_CLOSE):
        if len(tok.encode(tag, add_special_tokens=False)) != 1:
            raise ConfigError(f"pretrain: tokenizer at {src} does not encode {tag} as one token")
    return tok


def encode(pairs: list[tuple[str, str]], tok, cfg: PretrainConfig) -> list[tuple[list[int], int]]:
    """Token ids of prompt + completion + eos, and the prompt length (for completion-only loss)."""
    out, cut = [], 0
    for q, c in pairs:
        p_ids = tok.encode(common.prompt_for(q, tok, system=cfg.system), add_special_tokens=False)
        c_ids = tok.encode(c, add_special_tokens=False) + [tok.eos_token_id]
        ids = p_ids + c_ids
        if len(ids) > cfg.seq_len:
            cut += 1
            ids = ids[: cfg.seq_len]
        out.append((ids, len(p_ids)))
    if cut:
        log.warning("pretrain: %d of %d examples were longer than seq_len=%d and were cut", cut, len(pairs), cfg.seq_len)
    return out


def batch(data: list[tuple[list[int], int]], idx: list[int], pad_id: int, prompt_loss: bool):
    """Right-padded ``input_ids``, ``attention_mask``, ``labels`` ([B, T]); pads (and prompts) get -100."""
    T = max(len(data[i][0]) for i in idx)
    ids = torch.full((len(idx), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), T), dtype=torch.long)
    labels = torch.full((len(idx), T), -100, dtype=torch.long)
    for r, i in enumerate(idx):
        seq, plen = data[i]
        ids[r, : len(seq)] = torch.tensor(seq)
        mask[r, : len(seq)] = 1
        start = 0 if prompt_loss else plen
        labels[r, start : len(seq)] = torch.tensor(seq[start:])
    return ids, mask, labels


def length_groups(lengths: list[int], max_groups: int = 4, overhead: int = 256) -> list[list[int]]:
    """Positions of ``lengths`` split into <= ``max_groups`` groups of similar length.

    Each group becomes one right-padded forward costing ``len(group) * max(length) + overhead``
    tokens (the overhead stands for a forward's fixed cost); the split minimises the total over
    contiguous runs of the sorted lengths (a small dynamic programme: a batch is tens of rows).
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    s = [lengths[i] for i in order]
    n, inf = len(s), float("inf")
    # best[g][j]: cheapest split of the j shortest rows into g groups; cut[g][j]: where its last group starts
    best = [[inf] * (n + 1) for _ in range(max_groups + 1)]
    cut = [[0] * (n + 1) for _ in range(max_groups + 1)]
    best[0][0] = 0
    for g in range(1, max_groups + 1):
        for j in range(1, n + 1):
            for i in range(g - 1, j):
                c = best[g - 1][i] + (j - i) * s[j - 1] + overhead
                if c < best[g][j]:
                    best[g][j], cut[g][j] = c, i
    g = min(range(1, max_groups + 1), key=lambda k: best[k][n])
    groups, j = [], n
    while g:
        i = cut[g][j]
        groups.append(order[i:j])
        j, g = i, g - 1
    return groups[::-1]


def backward(model, data: list[tuple[list[int], int]], idx: list[int], pad_id: int, prompt_loss: bool) -> float:
    """Backpropagate the batch's mean token loss, one forward per length group; return the loss.

    Each group's loss is summed over its tokens and divided by the whole batch's count of predicted
    tokens (a label predicts the next token, so a row of n labelled positions from 0 predicts n-1),
    so the accumulated gradient is the single padded forward's, up to float rounding.
    """
    n_pred = sum(max(len(data[i][0]) - max(0 if prompt_loss else data[i][1], 1), 0) for i in idx)
    total = torch.tensor(max(n_pred, 1))
    loss = 0.0
    for group in length_groups([len(data[i][0]) for i in idx]):
        ids, mask, labels = batch(data, [idx[r] for r in group], pad_id, prompt_loss)
        part = model(input_ids=ids, attention_mask=mask, labels=labels, num_items_in_batch=total).loss
        part.backward()
        loss += part.item()
    return loss


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Learning rate before optimizer step ``step`` (0-based): warm-up, then cosine to 10%."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    horizon = round(cfg.steps / cfg.anneal)  # the run stops at `anneal` of this cosine schedule
    span = max(1, horizon - cfg.warmup_steps)
    frac = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


# --------------------------------------------------------------------------- checkpoints


def _save_checkpoint(out: Path, step: int, model, opt, keep: int = 2) -> None:
    """``out/checkpoint-<step>``: weights, optimizer; ``trainer_state.json`` marks it complete."""
    with atomic_dir(out / f"checkpoint-{step}") as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        torch.save(opt.state_dict(), tmp / "optimizer.pt")
        (tmp / STATE_FILE).write_text(json.dumps({"global_step": step}))
    for _, old in checkpoints(out)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _resume(out: Path, model, opt) -> int:
    """Load the newest complete checkpoint into ``model``/``opt``; the step to continue from."""
    from safetensors.torch import load_file

    ckpt = last_complete_checkpoint(out)
    if ckpt is None:
        return 0
    state = load_file(str(ckpt / "model.safetensors"))
    model.load_state_dict(state, strict=False)  # the tied lm_head is not stored separately
    model.tie_weights()
    opt.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
    step = json.loads((ckpt / STATE_FILE).read_text())["global_step"]
    log.info("pretrain: resuming from %s (step %d)", ckpt, step)
    return int(step)


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep only the records of steps <= ``step`` (those after the resumed checkpoint are redone)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            pass  # a line cut by the kill
    path.write_text("".join(keep))


# --------------------------------------------------------------------------- run


def run(cfg: PretrainConfig) -> Path:
    """Train tokenizer (if none) and base model; return ``<out>/final`` (HF dir incl. tokenizer)."""
    from ponder.models import build_model

    out, done = common.begin(cfg, "pretrain")
    if done is not None:
        return done
    out.mkdir(parents=True, exist_ok=True)
    common.quiet_transformers()
    pairs = build_corpus(cfg)
    tok = _tokenizer(cfg, out, pairs)
    data = encode(pairs, tok, cfg)
    model = build_model(cfg.preset, tok, seed=cfg.seed, max_position_embeddings=max(1024, cfg.seq_len))
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95),
    )
    start = _resume(out, model, opt)
    metrics = out / "metrics.jsonl"
    _truncate_metrics(metrics, start)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    with common.progress_bar() as bar, metrics.open("a") as mf:
        task = bar.add_task("pretrain", total=cfg.steps, completed=start)
        for step in range(start, cfg.steps):
            # The batch depends on (seed, step) only, so a resumed run sees the batches it would have.
            rng = random.Random(f"pretrain-batch:{cfg.seed}:{step}")
            idx = rng.sample(range(len(data)), min(cfg.batch_size, len(data)))
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            opt.zero_grad(set_to_none=True)
            loss = backward(model, data, idx, pad, cfg.prompt_loss)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            mf.write(json.dumps({"step": step + 1, "loss": round(loss, 5), "lr": lr_at(step, cfg),
                                 "peak_rss_mb": common.peak_rss_mb()}) + "\n")
            mf.flush()
            bar.update(task, completed=step + 1, description=f"pretrain loss {loss:.3f}")
            if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
                _save_checkpoint(out, step + 1, model, opt)
    model.eval()
    final = common.save_final(out, model, tok, cfg, {"steps": cfg.steps, "examples": len(data)},
                              thinking=common.OWN_MODELS)
    for _, ck in checkpoints(out):
        shutil.rmtree(ck, ignore_errors=True)  # the final model supersedes them
    return final


def corpus_stats(cfg: PretrainConfig) -> dict[str, Any]:
    """How many corpus problems carry a worked solution (for reports and tests)."""
    pairs = build_corpus(cfg)
    worked = sum(bool(parse(c).reasoning) for _, c in pairs)
    return {"examples": len(pairs), "worked": worked, "answer_only": len(pairs) - worked}

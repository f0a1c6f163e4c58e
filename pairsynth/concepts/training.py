"""``pairsynth learn-concept``: teach a pipeline one new word from a few real items.

1. Check the items and the token (before any training); 2. load the pipeline and add the token
(and, for ``lora``, a LoRA adapter); 3. resume from ``OUT/checkpoint.pt`` when one matches;
4. train (noise-prediction MSE on the items' latents), checking a fixed evaluation loss (and, with
``select="samples"``, judged validation samples, :mod:`.validation`) every ``eval_every`` steps and
stopping early once it stops improving; 5. write the best state as diffusers-format files plus the
concept card (see :mod:`pairsynth.concepts.card`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F

from pairsynth.concepts.backbones import Backbone, load_backbone
from pairsynth.concepts.card import CARD_FILE, ConceptCard, default_words, write_card
from pairsynth.concepts.items import ConceptItems, read_concept_items
from pairsynth.concepts.lora import (TARGET_MODULES, add_lora, load_lora_state, lora_state, only_layers,
                                    save_lora, targets)
from pairsynth.concepts.textual_inversion import NewToken, check_token_text, save_embedding
from pairsynth.concepts.validation import VALIDATION_STEPS, SampleValidation
from pairsynth.errors import ConceptError
from pairsynth.media import medium

if TYPE_CHECKING:
    from diffusers.training_utils import EMAModel

logger = logging.getLogger(__name__)

Method = Literal["textual-inversion", "lora"]
CHECKPOINT_FILE = "checkpoint.pt"


@dataclass(frozen=True, kw_only=True)
class LearnConfig:
    """How a concept is learned; everything here is recorded in the card.

    Attributes:
        method: ``textual-inversion`` (the token's embedding only) or ``lora`` (LoRA on the UNet
            plus the token's embedding: pivotal tuning, as diffusers' advanced LoRA script).
        lora_layers: ``attention`` (diffusers' DreamBooth LoRA layers), ``all`` (the convolutions and
            feed-forwards too) or ``no-attention`` (those alone: the caption's words keep steering
            through the unchanged attention), see :mod:`pairsynth.concepts.lora`.
        steps: optimiser steps at most; early stopping may end sooner.
        lr: learning rate of the token embedding; LoRA layers use ``lora_lr``.
        eval_every: steps between evaluation-loss checks (and checkpoints).
        patience: evaluations without a relative improvement of ``min_delta`` before stopping.
        keep_norm: keep the new embedding at its init word's norm after every step.
        latents: what the items are trained as: ``sample`` draws from the VAE's posterior each step
            (diffusers' scripts), ``mode`` takes its mean, ``auto`` picks ``mode`` for a VAE whose
            posterior noise is as large as the latents themselves (see :func:`training_latents`).
        prior_items: DreamBooth's prior preservation: before anything is trained, the model makes
            this many samples of the items' captions with the token read as its init word ("a red
            circle on the left"); every step then also trains on them, weighted ``prior_weight``,
            so the rest of the caption (place, pitch) keeps its meaning while the token is learned.
            ``prior_guidance`` is the guidance scale they are made at. 0: off.
        empty_prompt_prob: the share of training captions replaced by ``""``, as the base model's
            own training drops captions for classifier-free guidance. Guidance extrapolates from the
            unconditional prediction, and a LoRA trained on captioned items only moves that
            prediction untrained: on ``toy-shapes`` the purple concept's circles lost their side
            as guidance rose (50 % on the left at guidance 1, 34 % at 3, 6 % at 6).
        mirror: also train on every image mirrored left ↔ right, its caption's side words swapped
            by the ``hflip`` transform's caption rules (:mod:`pairsynth.augment`), so "on the left"
            is learned from as many layouts as "on the right" and no side is tied to a few items.
            Images only; leave it off for concepts that are not mirror-symmetric (text, logos).
        select: what picks the written checkpoint and stops the run: ``loss`` (the evaluation loss)
            or ``samples``: ``validation_samples`` samples of the items' captions from fixed seeds,
            made at ``validation_guidance`` at every evaluation and scored by ``judge`` (default: the
            medium's default judge) for likeness to the items and for following their captions
            (:mod:`pairsynth.concepts.validation`).
        ema: the decay of an exponential moving average of the trained weights (diffusers'
            ``EMAModel``, as its training scripts' ``--use_ema``); 0: off. Evaluations score the
            average and the written concept is the average, not the last step's weights, which
            at LoRA's learning rates jump from step to step (on ``toy-shapes`` two checkpoints 25
            steps apart drew 58 and 94 % of their circles on the asked side, judged without their
            attention layers: the loader bug of the README's correction).
        keep_layers: of the trained ``lora_layers``, the ones the folder's LoRA file gets (``None``:
            all). Training and its checks use every trained layer; ``no-attention`` after ``all``
            leaves the attention layers' share of the fit behind, so the caption's words steer
            through the base model's attention. On ``toy-shapes`` the same six purple runs drew
            84 % of their circles right with every layer written, 90 % without attention.
    """

    method: Method = "textual-inversion"
    steps: int = 400
    batch_size: int = 8
    lr: float = 5e-3
    lora_lr: float = 1e-4
    lora_rank: int = 4
    lora_layers: Literal["attention", "all", "no-attention"] = "attention"
    seed: int = 0
    eval_every: int = 25
    patience: int = 6
    min_delta: float = 0.005
    keep_norm: bool = True  # the new embedding keeps its init word's norm (see NewToken.restore_others)
    latents: Literal["auto", "sample", "mode"] = "auto"
    prior_items: int = 0
    prior_weight: float = 1.0
    prior_guidance: float = 3.0
    empty_prompt_prob: float = 0.0
    mirror: bool = False
    select: Literal["loss", "samples"] = "loss"
    validation_samples: int = 16
    validation_guidance: float = 3.0
    judge: str | None = None
    ema: float = 0.0
    keep_layers: Literal["attention", "all", "no-attention"] | None = None
    device: str = "cpu"


@dataclass(frozen=True, kw_only=True)
class LearnProgress:
    """Sent after every step, for progress bars."""

    step: int
    steps: int
    loss: float
    eval_loss: float | None
    best_eval_loss: float | None
    best_validation: float | None = None  # select="samples": the best validation score so far


@dataclass(kw_only=True)
class _State:
    step: int = 0
    losses: list[float] = field(default_factory=list)
    evals: list[tuple[int, float]] = field(default_factory=list)
    validations: list[tuple[int, float, float | None]] = field(default_factory=list)  # step, fidelity, following
    best: float | None = None  # the selection quantity: the evaluation loss, or minus the validation score
    best_step: int = 0
    best_weights: dict[str, torch.Tensor] = field(default_factory=dict)
    stale: int = 0
    seconds: float = 0.0  # training time over all runs (a resumed run adds its own)


def learn_concept(items_dir: str | Path, out_dir: str | Path, *, token: str, init: str, words: str | None = None,
                  model: str | None = None,
                  config: LearnConfig = LearnConfig(), overwrite: bool = False,
                  on_progress: Callable[[LearnProgress], None] | None = None) -> ConceptCard:
    """Learn a concept from the items in ``items_dir`` and write it to ``out_dir``.

    Args:
        items_dir: 5–50 images or clips of the concept (captions optional, see :mod:`.items`).
        out_dir: the concept folder; a killed run resumes from its checkpoint when called again.
        token: the new word, e.g. ``<sphynx>``; init: the word it starts from, e.g. ``cat``.
        words: what the token means in plain words, for judges (default: the token without ``<>``).
        model: the pipeline to adapt; default the toy zoo's model for the items' medium.
        config: method, steps, learning rates, early stopping.
        overwrite: start over even if ``out_dir`` holds a checkpoint or a finished concept.
        on_progress: called after every step.
    """
    # 1. Check inputs before any model loads.
    checked = check_learn_inputs(items_dir, out_dir, token=token, init=init, model=model, config=config,
                                 overwrite=overwrite)
    if checked.finished is not None:
        logger.info("%s already holds this concept (%d steps); nothing to do", checked.out, checked.finished.steps_done)
        return checked.finished
    items, model, out, fingerprint = checked.items, checked.model, checked.out, checked.fingerprint
    for caveat in items.caveats():  # here, not in the check, which the CLI also calls: said once
        logger.warning("%s", caveat)
    out.mkdir(parents=True, exist_ok=True)

    # 2. Load the pipeline; make the prior samples while it is unchanged; add the token (and the LoRA adapter).
    backbone = load_backbone(model, device=config.device)
    prior = _prior(backbone, items.prompts(token), token, init, config)
    new_token = NewToken(backbone.tokenizer, backbone.text_encoder, token, init)
    groups = [{"params": new_token.parameters(), "lr": config.lr, "weight_decay": 0.0}]
    if config.method == "lora":
        adapter = add_lora(backbone.unet, config.lora_rank, config.lora_layers)
        groups.append({"params": adapter, "lr": config.lora_lr, "weight_decay": 1e-4})
    optimizer = torch.optim.AdamW(groups)
    trainable = [parameter for group in groups for parameter in group["params"]]
    ema = _moving_average(trainable, config.ema)
    latents, latents_used = training_latents(backbone.item_latents(items, mirror=config.mirror), config.latents)
    prompts = items.prompts(token)
    if config.mirror:
        prompts += mirrored_prompts(prompts)
    scheduler = backbone.noise_scheduler()
    evaluation = _evaluation_batch(latents, prompts, scheduler, config.seed)
    validation = _validation(backbone, items, prompts, config) if config.select == "samples" else None

    # 3. Resume from a matching checkpoint.
    state = _State()
    checkpoint = out / CHECKPOINT_FILE
    if checkpoint.is_file() and not overwrite:
        state = _resume(checkpoint, fingerprint, new_token, backbone, optimizer, ema)
        logger.info("resuming %s at step %d", out, state.step)

    # 4. Train; the checks (evaluation loss, or judged samples) score the moving average when there is one.
    backbone.text_encoder.train()
    while state.step < config.steps and state.stale < config.patience:
        step_started = time.perf_counter()
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + state.step)
        loss = _loss(backbone, latents, prompts, scheduler, generator, config.batch_size, config.empty_prompt_prob)
        if prior is not None:
            loss = loss + config.prior_weight * _loss(backbone, *prior, scheduler, generator, config.batch_size)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        new_token.restore_others(config.keep_norm)
        if ema is not None:
            ema.step(trainable)
        state.step += 1
        state.losses.append(float(loss.detach()))
        state.seconds += time.perf_counter() - step_started
        evaluated = validated = None
        if state.step % config.eval_every == 0 or state.step == config.steps:
            with _averaged(ema, trainable):
                evaluated = _evaluate(backbone, evaluation)
                validated = validation() if validation is not None else None
                weights = _weights(new_token, backbone, config.method)
            state.evals.append((state.step, evaluated))
            if validated is not None:
                state.validations.append((state.step, validated.fidelity, validated.following))
            _record(state, evaluated if validated is None else -validated.score, config, weights)
            _save_checkpoint(checkpoint, fingerprint, state, new_token, backbone, optimizer, config.method, ema)
        if on_progress is not None:
            on_progress(LearnProgress(step=state.step, steps=config.steps, loss=state.losses[-1], eval_loss=evaluated,
                                      best_eval_loss=min(e for _, e in state.evals) if state.evals else None,
                                      best_validation=-state.best if state.validations else None))
    if state.stale >= config.patience:
        logger.info("early stop at step %d: no better %s for %d evaluations (best at step %d)", state.step,
                    "evaluation loss" if config.select == "loss" else "validation score", config.patience,
                    state.best_step)

    # 5. Write the best weights in diffusers' formats, and the card.
    files = {"textual_inversion": save_embedding(out, token, state.best_weights["token"]).name}
    if config.method == "lora":
        trained = {k.removeprefix("lora:"): v for k, v in state.best_weights.items() if k.startswith("lora:")}
        files["lora"] = save_lora(out, only_layers(trained, config.keep_layers or config.lora_layers)).name
    card = ConceptCard(
        token=token, init=init, words=words or default_words(token), method=config.method,
        medium=items.medium, base_model=model,
        pipeline=type(backbone.pipeline).__name__, fingerprint=fingerprint, files=files,
        items=[{"file": str(i.path.relative_to(items.folder)), "sha256": i.sha256, "caption": i.caption}
               for i in items.items],
        steps_planned=config.steps, steps_done=state.step, best_step=state.best_step,
        stopped_early=state.step < config.steps, loss_curve=_window_means(state.losses, config.eval_every),
        eval_loss_curve=[list(e) for e in state.evals], validation_curve=[list(v) for v in state.validations],
        config=asdict(config),
        latents=latents_used, seconds=round(state.seconds, 1), threads=torch.get_num_threads(),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )
    write_card(out, card)
    checkpoint.unlink(missing_ok=True)
    return card


@dataclass(frozen=True, kw_only=True)
class CheckedInputs:
    """What :func:`check_learn_inputs` read: the items, the model and output resolved, and the
    finished concept when ``out`` already holds this very one."""

    items: ConceptItems
    model: str
    out: Path
    fingerprint: str
    finished: ConceptCard | None


def check_learn_config(config: LearnConfig, name: Callable[[str], str] = str) -> None:
    """The settings' own checks, needing neither items nor a model, raising :class:`ConceptError`.

    ``name`` turns a field into what the caller calls it: the CLI passes its flag names, so one
    check serves ``--ema 1.5`` and ``LearnConfig(ema=1.5)`` alike.
    """
    if config.lora_layers not in TARGET_MODULES:
        raise ConceptError(f"{name('lora_layers')} {config.lora_layers!r}: use one of {', '.join(TARGET_MODULES)}")
    for field_name in ("steps", "lr", "lora_lr", "lora_rank"):
        if getattr(config, field_name) <= 0:
            raise ConceptError(f"{name(field_name)} {getattr(config, field_name)}: must be above 0")
    if config.prior_items < 0:
        raise ConceptError(f"{name('prior_items')} {config.prior_items}: must be 0 (off) or more")
    if not 0 <= config.empty_prompt_prob < 1:
        raise ConceptError(f"{name('empty_prompt_prob')} {config.empty_prompt_prob}: must be in [0, 1)")
    if not 0 <= config.ema < 1:
        raise ConceptError(f"{name('ema')} {config.ema}: a decay in [0, 1) (0: off)")
    if config.keep_layers is not None:
        if config.method != "lora":
            raise ConceptError(f"{name('keep_layers')} {config.keep_layers!r}: a LoRA setting; {name('method')} "
                               f"{config.method} trains no layers, so leave it out or use lora")
        trained = targets(config.lora_layers)
        subsets = [k for k in TARGET_MODULES if targets(k) <= trained]
        if config.keep_layers not in subsets:
            raise ConceptError(f"{name('keep_layers')} {config.keep_layers!r}: keeps only trained layers; with "
                               f"{name('lora_layers')} {config.lora_layers} use one of {', '.join(subsets)}")
    if config.select not in ("loss", "samples"):
        raise ConceptError(f"{name('select')} {config.select!r}: use loss or samples")
    if config.select == "samples" and config.validation_samples < 1:
        raise ConceptError(f"{name('validation_samples')} {config.validation_samples}: must be 1 or more")
    if config.select != "samples" and config.judge is not None:
        raise ConceptError(f"{name('judge')} {config.judge!r}: only {name('select')} samples judges validation "
                           f"samples; add it or leave {name('judge')} out")


def check_learn_inputs(items_dir: str | Path, out_dir: str | Path, *, token: str, init: str, model: str | None,
                       config: LearnConfig, overwrite: bool = False,
                       name: Callable[[str], str] = str) -> CheckedInputs:
    """Every check :func:`learn_concept` can make without a model, raising :class:`ConceptError`.

    Callers with a display (the CLI's progress bar) call it first, so a bad input is one line and
    no bar flashes before it; ``name`` is :func:`check_learn_config`'s.
    """
    check_learn_config(config, name=name)
    check_token_text(token)
    items = read_concept_items(items_dir, token)
    kind = medium(items.medium)
    if config.mirror and not kind.mirrors:
        raise ConceptError(f"{items.folder}: mirror applies to images only; {kind.plural} items have no left and right")
    if config.select == "samples":
        from pairsynth.checks import check_model_ref

        check_model_ref(config.judge or kind.default_judge, kind.judge, "judge")
    model = model or kind.default_generator
    out = Path(out_dir)
    fingerprint = _fingerprint(items, token, init, model, config)
    finished = None
    if (out / CARD_FILE).is_file() and not overwrite:
        finished = ConceptCard.read(out)
        if finished.fingerprint != fingerprint:
            raise ConceptError(f"{out}: holds another concept ({finished.token}, {finished.method}); "
                               "use --overwrite or another --out")
    return CheckedInputs(items=items, model=model, out=out, fingerprint=fingerprint, finished=finished)


def mirrored_prompts(prompts: list[list[str]]) -> list[list[str]]:
    """Each item's prompts as its mirror image reads: ``hflip``'s caption rules swap left and right."""
    from pairsynth.augment.transforms import HorizontalFlip

    flip = HorizontalFlip(p=1.0)
    return [[flip.edit_caption(prompt, {}).after for prompt in options] for options in prompts]


NOISY_POSTERIOR = 0.5
"""Posterior std / latent std above which ``latents: auto`` trains on the posterior's mean."""


def training_latents(posterior: tuple[torch.Tensor, torch.Tensor],
                     choice: str) -> tuple[tuple[torch.Tensor, torch.Tensor], str]:
    """The (mean, std) the training step draws item latents from, and which choice was made.

    Stable Diffusion's VAE has a posterior std near 0.01 of its latents' spread, so a sample is the
    mean plus a little noise, and diffusers' scripts sample. A KL-regularised autoencoder decoded
    from its mode (``toy-shapes``' VAE: std 1.05× the spread) had its UNet trained on modes;
    sampling there buries each item under noise as large as the item, which is what the
    textual-inversion and LoRA runs on ``toy-shapes`` first learned from.
    """
    mean, std = posterior
    if choice == "auto":
        choice = "mode" if float(std.mean()) > NOISY_POSTERIOR * float(mean.std()) else "sample"
    return (mean, torch.zeros_like(std) if choice == "mode" else std), choice


def _prior(backbone: Backbone, prompts: list[list[str]], token: str, init: str,
           config: LearnConfig) -> tuple[tuple[torch.Tensor, torch.Tensor], list[list[str]]] | None:
    """Prior-preservation latents and their prompts (the items' captions with ``init`` for ``token``)."""
    if not config.prior_items:
        return None
    captions = [caption.replace(token, init) for options in prompts for caption in options]
    chosen = [captions[i % len(captions)] for i in range(config.prior_items)]
    started = time.perf_counter()
    latents = backbone.prior_latents(chosen, seed=config.seed, steps=20, guidance=config.prior_guidance)
    logger.info("prior preservation: %d samples of the base model in %.0f s", len(chosen), time.perf_counter() - started)
    return (latents, torch.zeros_like(latents)), [[caption] for caption in chosen]


def _loss(backbone: Backbone, latents: tuple[torch.Tensor, torch.Tensor], prompts: list[list[str]], scheduler,
          generator: torch.Generator, batch_size: int, empty_prompt_prob: float = 0.0) -> torch.Tensor:
    """Noise-prediction MSE on a batch of items, each under one of its prompts (or, at ``empty_prompt_prob``, ``""``)."""
    mean, std = latents
    picks = torch.randint(0, len(mean), (batch_size,), generator=generator)
    texts = [prompts[i][int(torch.randint(0, len(prompts[i]), (1,), generator=generator))] for i in picks.tolist()]
    if empty_prompt_prob:
        dropped = torch.rand(batch_size, generator=generator) < empty_prompt_prob
        texts = ["" if drop else text for text, drop in zip(texts, dropped.tolist())]
    clean = (mean[picks] + std[picks] * torch.randn(mean[picks].shape, generator=generator))
    clean = clean * backbone.pipeline.vae.config.scaling_factor
    return _denoising_loss(backbone, scheduler, clean, texts, generator)


def _denoising_loss(backbone: Backbone, scheduler, clean: torch.Tensor, texts: list[str],
                    generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(clean.shape, generator=generator)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(clean),), generator=generator)
    noisy = scheduler.add_noise(clean, noise, timesteps)
    target = noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(clean, noise, timesteps)
    device = backbone.unet.device
    condition = backbone.condition(backbone.tokenize(texts))
    prediction = backbone.predict(noisy.to(device), timesteps.to(device), condition)
    return F.mse_loss(prediction.float(), target.to(device).float())


def _evaluation_batch(latents, prompts, scheduler, seed: int, draws: int = 4) -> dict:
    """A fixed set of (item, prompt, noise, timestep): the same loss every evaluation, so changes mean learning."""
    mean, _ = latents
    generator = torch.Generator().manual_seed(seed + 7)
    picks = torch.arange(len(mean)).repeat(draws)
    texts = [prompts[i][d % len(prompts[i])] for d, i in zip(picks.div(len(mean), rounding_mode="floor").tolist(),
                                                             picks.tolist())]
    return {"clean": mean[picks], "texts": texts, "generator_seed": seed + 11, "scheduler": scheduler}


@torch.no_grad()
def _evaluate(backbone: Backbone, batch: dict) -> float:
    generator = torch.Generator().manual_seed(batch["generator_seed"])
    clean = batch["clean"] * backbone.pipeline.vae.config.scaling_factor
    return float(_denoising_loss(backbone, batch["scheduler"], clean, batch["texts"], generator))


def _record(state: _State, value: float, config: LearnConfig, weights: dict[str, torch.Tensor]) -> None:
    """Keep the weights of the lowest ``value`` (the evaluation loss, or minus the validation score) and
    count evaluations without a ``min_delta`` improvement (relative to a loss, absolute on a score)."""
    if state.best is None:
        improved = True
    elif config.select == "loss":
        improved = value < state.best * (1 - config.min_delta)
    else:
        improved = value < state.best - config.min_delta
    state.stale = 0 if improved else state.stale + 1
    if state.best is None or value < state.best:
        state.best, state.best_step, state.best_weights = value, state.step, weights


def _validation(backbone: Backbone, items: ConceptItems, prompts: list[list[str]],
                config: LearnConfig) -> SampleValidation:
    """The validation samples' maker and judge (``select="samples"``), the judge loaded beside the pipeline."""
    from pairsynth.judges import JudgeSettings, load_judge

    kind = medium(items.medium).judge
    settings = JudgeSettings(**{kind: config.judge}) if config.judge else JudgeSettings()
    judge = load_judge(items.medium, settings, device=config.device)
    real = backbone.family.judge_items(backbone.pipeline, items, mirror=config.mirror)
    return SampleValidation(backbone, judge, real, prompts, samples=config.validation_samples, steps=VALIDATION_STEPS,
                            guidance=config.validation_guidance, seed=config.seed)


def _weights(new_token: NewToken, backbone: Backbone, method: str) -> dict[str, torch.Tensor]:
    weights = {"token": new_token.vector}
    if method == "lora":
        weights.update({f"lora:{k}": v for k, v in lora_state(backbone.unet).items()})
    return weights


def _moving_average(parameters: list[torch.nn.Parameter], decay: float) -> EMAModel | None:
    """diffusers' ``EMAModel`` over the trained parameters, or ``None`` when ``decay`` is 0."""
    if not decay:
        return None
    from diffusers.training_utils import EMAModel  # importable once load_backbone has run

    return EMAModel(parameters, decay=decay)


@contextmanager
def _averaged(ema: EMAModel | None, parameters: list[torch.nn.Parameter]) -> Iterator[None]:
    """The moving average's weights in place of the trained ones while evaluating (and keeping) them."""
    if ema is None:
        yield
        return
    ema.store(parameters)
    ema.copy_to(parameters)
    try:
        yield
    finally:
        ema.restore(parameters)


def _save_checkpoint(path: Path, fingerprint: str, state: _State, new_token: NewToken, backbone: Backbone,
                     optimizer: torch.optim.Optimizer, method: str, ema: EMAModel | None = None) -> None:
    """Everything a resumed run needs, written to a temporary name and renamed (a kill leaves the old one)."""
    data = {"fingerprint": fingerprint, "state": asdict(state), "weights": _weights(new_token, backbone, method),
            "optimizer": optimizer.state_dict(), "ema": None if ema is None else ema.state_dict()}
    tmp = path.with_suffix(".tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)


def _resume(path: Path, fingerprint: str, new_token: NewToken, backbone: Backbone,
            optimizer: torch.optim.Optimizer, ema: EMAModel | None = None) -> _State:
    data = torch.load(path, map_location="cpu", weights_only=False)
    if data["fingerprint"] != fingerprint:
        raise ConceptError(f"{path}: a checkpoint of another run (other items, token or settings); "
                           "use --overwrite to start over")
    new_token.set_vector(data["weights"]["token"])
    lora = {k.removeprefix("lora:"): v for k, v in data["weights"].items() if k.startswith("lora:")}
    if lora:
        load_lora_state(backbone.unet, lora)
    optimizer.load_state_dict(data["optimizer"])
    if ema is not None:
        ema.load_state_dict(data["ema"])
    saved = data["state"]
    saved["evals"] = [tuple(e) for e in saved["evals"]]
    saved["validations"] = [tuple(v) for v in saved.get("validations", [])]
    return _State(**saved)


def _window_means(losses: list[float], window: int) -> list[list[float]]:
    """The training loss curve as ``[step, mean loss of the window ending there]`` pairs."""
    return [[min(start + window, len(losses)), round(sum(losses[start:start + window]) / len(losses[start:start + window]), 5)]
            for start in range(0, len(losses), window)]


def _fingerprint(items: ConceptItems, token: str, init: str, model: str, config: LearnConfig) -> str:
    settings = {k: v for k, v in asdict(config).items() if k != "device"}
    data = {"items": [(i.sha256, i.caption) for i in items.items], "token": token, "init": init, "model": model,
            "config": settings}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

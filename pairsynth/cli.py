"""The ``pairsynth`` command line: thin commands that build the Python API's objects and call it."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pairsynth.alignment import qa as qa_defaults
from pairsynth.errors import PairsynthError
from pairsynth.judges import JudgeSettings

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Synthesize aligned image–caption, audio–caption and image+audio+caption training data with "
                       "diffusion models, kept only when CLIP (images) and CLAP (audio) agree with the caption.")
console = Console(stderr=True)


def _setup(verbose: bool) -> None:
    # The hub is unreachable on most machines this runs on; without these, transformers waits minutes
    # on network time-outs before falling back to local files. A user with a hub sets them to 0.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)])
    logging.getLogger("pairsynth").setLevel(logging.INFO)
    for noisy in ("diffusers", "transformers", "httpx", "root", "ray"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


@contextmanager
def _progress_bar(target: int | None) -> Iterator[Callable]:
    """A rich progress bar over accepted pairs; yields the callback the library calls per commit."""
    columns = (TextColumn("[bold]accepted"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("accepted", total=target, stats="loading models…")

        def show(update) -> None:
            rate = update.accepted / update.candidates if update.candidates else 0.0
            bar.update(task, total=update.target, completed=update.accepted,
                       stats=f"{update.candidates} candidates, {rate:.0%} accepted")

        yield show


def _print_summary(summary, out: Path) -> None:
    console.print(f"[green]{summary.accepted}[/] pairs from {summary.candidates} candidates in "
                  f"{summary.elapsed_s:.1f} s → {out}")
    if summary.times.seconds:
        console.print(f"[dim]time: {summary.times}[/]", soft_wrap=True)
    for state in summary.shortfall:
        console.print(f"[yellow]short:[/] {state.key!r}: {state.accepted}/{summary.k} after {state.attempts} attempts")
    _print_outputs(out)


BackendOption = Annotated[Optional[str], typer.Option(
    help="where the models run: local, or ray (a local Ray, or the cluster RAY_ADDRESS names); default: the recipe's")]
GeneratorActors = Annotated[Optional[str], typer.Option(help="ray: generator actors, auto or N (auto: one per GPU, else per core)")]
GpusPerActor = Annotated[Optional[float], typer.Option(help="ray: GPUs each generator actor reserves (auto: 1 on GPU clusters)")]
ScorerActors = Annotated[Optional[int], typer.Option(help="ray: 0 judges inside the generator actors; N: a judge pool of N")]
CpusPerActor = Annotated[Optional[int], typer.Option(help="ray: torch threads per actor (auto: the cores split among the actors)")]


def _ray_flags(generator_actors: str | None, gpus_per_actor: float | None, scorer_actors: int | None,
               cpus_per_actor: int | None) -> dict[str, object]:
    actors: object = generator_actors
    if generator_actors is not None and generator_actors != "auto":
        actors = int(generator_actors) if generator_actors.isdigit() else generator_actors
    return {"generator_actors": actors, "gpus_per_actor": gpus_per_actor, "scorer_actors": scorer_actors,
            "cpus_per_actor": cpus_per_actor}


def _run_generate(recipe_path: Path, out: Path, overwrite: bool, backend: str | None = None,
                  ray_flags: dict[str, object] | None = None) -> None:
    from pairsynth.backends import choose_backend
    from pairsynth.generate import generate_dataset
    from pairsynth.recipe import load_recipe

    recipe = load_recipe(recipe_path)  # a bad recipe fails here, before any backend starts
    runner = choose_backend(backend, recipe.backend.ray, **(ray_flags or {}))
    with _progress_bar(recipe.k * len(recipe.caption_list)) as show:
        summary = generate_dataset(recipe, out, overwrite=overwrite, backend=runner, on_progress=show)
    _print_summary(summary, out)


def _print_outputs(out: Path) -> None:
    for name, what in (("shards", "WebDataset shards"), ("imagefolder", "imagefolder dataset"), ("audiofolder", "audiofolder dataset"),
                       ("manifest.jsonl", "every candidate, with scores and reasons"),
                       ("report/index.html", "the report: open it in a browser")):
        if (out / name).exists():
            console.print(f"  {out / name}  [dim]{what}[/]")


@app.command()
def generate(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe", exists=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory; re-run to resume")],
    overwrite: Annotated[bool, typer.Option(help="discard what --out holds instead of resuming")] = False,
    backend: BackendOption = None,
    generator_actors: GeneratorActors = None,
    gpus_per_actor: GpusPerActor = None,
    scorer_actors: ScorerActors = None,
    cpus_per_actor: CpusPerActor = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Generate pairs from a recipe until each caption has k accepted pairs."""
    _setup(verbose)
    flags = _ray_flags(generator_actors, gpus_per_actor, scorer_actors, cpus_per_actor)
    _fail_cleanly(lambda: _run_generate(recipe, out, overwrite, backend, flags))


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory")] = Path("out/demo"),
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the shipped example recipes on the toy zoo: image–caption and audio–caption pairs, offline."""
    _setup(verbose)
    from pairsynth.demo import DEMO_RECIPES, recipe_path

    for name in DEMO_RECIPES:
        console.rule(f"{name}: {recipe_path(name)}")
        _fail_cleanly(lambda: _run_generate(recipe_path(name), out / name, overwrite=True))
    console.print(f"\nOpen {out / DEMO_RECIPES[0] / 'report' / 'index.html'} and {out / DEMO_RECIPES[1] / 'report' / 'index.html'} "
                  "in a browser; load the datasets with the snippets in the README.")


@app.command()
def vary(
    source: Annotated[Path, typer.Argument(help="a dataset: imagefolder, WebDataset, media + .txt captions, or a pairsynth output")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory; re-run to resume")],
    per_pair: Annotated[int, typer.Option(help="accepted variations per source pair")] = 4,
    strength: Annotated[float, typer.Option(help="SDEdit strength in (0, 1]: how far from the source")] = 0.35,
    model: Annotated[Optional[str], typer.Option(help="variation model; default: the toy zoo's")] = None,
    clip: Annotated[str, typer.Option(help="the CLIP judge (image pairs)")] = JudgeSettings().clip,
    clap: Annotated[str, typer.Option(help="the CLAP judge (audio pairs)")] = JudgeSettings().clap,
    pretrained: Annotated[Optional[str], typer.Option(help="open_clip tag or checkpoint, for a bare CLIP ARCH")] = None,
    precision: Annotated[str, typer.Option(help="judge precision: fp32, or bf16/fp16 autocast")] = "fp32",
    judge_batch_size: Annotated[int, typer.Option(help="samples per judge forward pass")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps")] = "auto",
    caption_template: Annotated[str, typer.Option(help="prompt and new caption, e.g. '{caption}, at night'")] = "{caption}",
    steps: Annotated[int, typer.Option()] = 20,
    guidance_scale: Annotated[float, typer.Option()] = 5.0,
    min_score: Annotated[Optional[float], typer.Option(help="CLIPScore threshold")] = None,
    band: Annotated[tuple[float, float], typer.Option(help="keep source↔variation cosine in [LOW, HIGH)")] = (0.80, 0.995),
    seed: Annotated[int, typer.Option()] = 0,
    batch_size: Annotated[int, typer.Option()] = 8,
    overwrite: Annotated[bool, typer.Option(help="discard what --out holds instead of resuming")] = False,
    backend: BackendOption = None,
    generator_actors: GeneratorActors = None,
    gpus_per_actor: GpusPerActor = None,
    scorer_actors: ScorerActors = None,
    cpus_per_actor: CpusPerActor = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Make variations of existing pairs; keep those that still match their caption and their source."""
    _setup(verbose)

    def run() -> None:
        from pairsynth.backends import choose_backend
        from pairsynth.vary import vary_config, vary_dataset

        config = vary_config(per_pair=per_pair, strength=strength, model=model, clip=clip, clap=clap,
                             pretrained=pretrained, precision=precision, judge_batch_size=judge_batch_size,
                             device=device, steps=steps,
                             caption_template=caption_template, guidance_scale=guidance_scale, min_score=min_score,
                             similarity_band=band, seed=seed, batch_size=batch_size)
        runner = choose_backend(backend, **_ray_flags(generator_actors, gpus_per_actor, scorer_actors, cpus_per_actor))
        with _progress_bar(None) as show:
            summary = vary_dataset(source, out, config, overwrite=overwrite, backend=runner, on_progress=show)
        _print_summary(summary, out)

    _fail_cleanly(run)


@app.command()
def score(
    dataset: Annotated[Path, typer.Argument(
        help="imagefolder/audiofolder, WebDataset shards, media + .txt captions, or a pairsynth output")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="report folder: index.html, summary.json, scores.jsonl, media/")] = Path("report"),
    threshold: Annotated[float, typer.Option(
        help="score every judge must give a pair, 100·max(cosine, 0)")] = qa_defaults.DEFAULT_THRESHOLD,
    fail_under: Annotated[Optional[float], typer.Option(
        help="gate: exit 1 when fewer than this share of pairs reach --threshold (0.9 = 90%)")] = None,
    clip: Annotated[str, typer.Option(help="CLIP judge for images")] = JudgeSettings().clip,
    clap: Annotated[str, typer.Option(help="CLAP judge for audio")] = JudgeSettings().clap,
    pretrained: Annotated[Optional[str], typer.Option(help="open_clip tag or checkpoint, for a bare CLIP ARCH")] = None,
    precision: Annotated[str, typer.Option(help="judge precision: fp32, or bf16/fp16 autocast")] = "fp32",
    distractors: Annotated[int, typer.Option(
        help="distractor captions each caption is ranked among (sampled, seeded)")] = qa_defaults.DEFAULT_DISTRACTORS,
    duplicate_cosine: Annotated[float, typer.Option(
        help="embedding cosine at which two samples are near-duplicates")] = qa_defaults.DEFAULT_DUPLICATE_COSINE,
    layout: Annotated[str, typer.Option(help="auto, folder, webdataset, sidecar or pairsynth")] = "auto",
    seed: Annotated[int, typer.Option(help="seeds the distractor sample")] = 0,
    device: Annotated[str, typer.Option()] = "auto",
    batch_size: Annotated[int, typer.Option()] = 64,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Score every pair of a dataset with CLIP/CLAP and write an alignment QA report.

    A pair passes when its media are usable (readable; not blank, silent or clipped) and every judge's
    score reaches --threshold. With --fail-under the command is a gate: `--threshold 25 --fail-under 0.9`
    exits 1 when fewer than 90% of all pairs (unreadable ones included) pass. Exit 2: the dataset or a
    judge model cannot be read at all.
    """
    _setup(verbose)
    from pairsynth.score import ScoreSettings, score_dataset

    settings = ScoreSettings(clip=clip, clap=clap, pretrained=pretrained, precision=precision, device=device, batch_size=batch_size, threshold=threshold,
                             distractors=distractors, seed=seed, duplicate_cosine=duplicate_cosine,
                             fail_under=fail_under, layout=layout)
    outcome = []

    def run() -> None:
        with Progress(TextColumn("[bold]scored"), TextColumn("{task.completed} items"), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task("scored", total=None)
            outcome.append(score_dataset(dataset, out, settings, on_progress=lambda n: bar.update(task, completed=n)))

    _fail_cleanly(run)
    summary = outcome[0].summary
    rate = summary["pass_rate"] or 0.0
    console.print(f"{summary['candidates']} pairs: [bold]{summary['accepted']}[/] ({rate:.1%}) reach score "
                  f"{threshold:g}; {len(summary['unreadable'])} unreadable → {out / 'index.html'}")
    if outcome[0].gate_passed is False:
        console.print(f"[red]gate failed:[/] {rate:.1%} of pairs reach {threshold:g}, "
                      f"fewer than --fail-under {fail_under:g}")
        raise typer.Exit(1)


@app.command()
def models() -> None:
    """List the toy zoo's models and the hub models they stand in for."""
    from pairsynth.zoo import list_models

    for model in list_models():
        state = "ready" if model.available else "not trained"
        console.print(f"[bold]{model.name}[/] ({model.role}, {state}): {model.description}; "
                      f"real default: {model.real_default}")


def _fail_cleanly(action) -> None:
    try:
        action()
    except PairsynthError as err:
        console.print(f"[red]error:[/] {err}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None

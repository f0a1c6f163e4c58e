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

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Synthesize aligned image–caption pairs, kept only when CLIP agrees.")
console = Console(stderr=True)


def _setup(verbose: bool) -> None:
    # The hub is unreachable on most machines this runs on; without these, transformers waits minutes
    # on network time-outs before falling back to local files. A user with a hub sets them to 0.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)])
    logging.getLogger("pairsynth").setLevel(logging.INFO)
    for noisy in ("diffusers", "transformers", "httpx", "root"):
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


def _run_generate(recipe_path: Path, out: Path, overwrite: bool) -> None:
    from pairsynth.generate import generate_dataset
    from pairsynth.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    with _progress_bar(recipe.k * len(recipe.caption_list)) as show:
        summary = generate_dataset(recipe, out, overwrite=overwrite, on_progress=show)
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
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Generate pairs from a recipe until each caption has k accepted pairs."""
    _setup(verbose)
    _fail_cleanly(lambda: _run_generate(recipe, out, overwrite))


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
    clip: Annotated[str, typer.Option(help="the CLIP judge")] = "toy-shapes-clip",
    caption_template: Annotated[str, typer.Option(help="prompt and new caption, e.g. '{caption}, at night'")] = "{caption}",
    steps: Annotated[int, typer.Option()] = 20,
    guidance_scale: Annotated[float, typer.Option()] = 5.0,
    min_score: Annotated[Optional[float], typer.Option(help="CLIPScore threshold")] = None,
    band: Annotated[tuple[float, float], typer.Option(help="keep source↔variation cosine in [LOW, HIGH)")] = (0.80, 0.995),
    seed: Annotated[int, typer.Option()] = 0,
    batch_size: Annotated[int, typer.Option()] = 8,
    overwrite: Annotated[bool, typer.Option(help="discard what --out holds instead of resuming")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Make variations of existing pairs; keep those that still match their caption and their source."""
    _setup(verbose)

    def run() -> None:
        from pairsynth.vary import vary_config, vary_dataset

        config = vary_config(per_pair=per_pair, strength=strength, model=model, clip=clip, steps=steps,
                             caption_template=caption_template, guidance_scale=guidance_scale, min_score=min_score,
                             similarity_band=band, seed=seed, batch_size=batch_size)
        with _progress_bar(None) as show:
            summary = vary_dataset(source, out, config, overwrite=overwrite, on_progress=show)
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
    clip: Annotated[str, typer.Option(help="CLIP judge for images")] = "toy-shapes-clip",
    clap: Annotated[str, typer.Option(help="CLAP judge for audio")] = "toy-sounds-clap",
    distractors: Annotated[int, typer.Option(
        help="distractor captions each caption is ranked among (sampled, seeded)")] = qa_defaults.DEFAULT_DISTRACTORS,
    duplicate_cosine: Annotated[float, typer.Option(
        help="embedding cosine at which two samples are near-duplicates")] = qa_defaults.DEFAULT_DUPLICATE_COSINE,
    layout: Annotated[str, typer.Option(help="auto, folder, webdataset, sidecar or pairsynth")] = "auto",
    seed: Annotated[int, typer.Option(help="seeds the distractor sample")] = 0,
    device: Annotated[str, typer.Option()] = "auto",
    batch_size: Annotated[int, typer.Option()] = 64,
    reference: Annotated[Optional[Path], typer.Option(
        help="real dataset to compare with: precision/recall/density/coverage, Fréchet distance, diversity")] = None,
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

    settings = ScoreSettings(clip=clip, clap=clap, device=device, batch_size=batch_size, threshold=threshold,
                             distractors=distractors, seed=seed, duplicate_cosine=duplicate_cosine,
                             fail_under=fail_under, layout=layout, reference=reference)
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


@app.command()
def probe(
    real: Annotated[Path, typer.Option(help="labeled real data: imagefolder/audiofolder, class subfolders, or pairs")],
    synthetic: Annotated[list[Path], typer.Option(help="synthetic data (a pairsynth output); repeat to compare several")],
    out: Annotated[Path, typer.Option("--out", "-o", help="report folder: index.html, summary.json")] = Path("probe"),
    shots: Annotated[str, typer.Option(help="real examples per class (per caption for retrieval), comma-separated")] = "5,10,20",
    draws: Annotated[int, typer.Option(help="training draws per shot count: each gain is paired over them")] = 10,
    classifier: Annotated[str, typer.Option(help="cnn (from scratch) or linear (on frozen CLIP/CLAP embeddings)")] = "cnn",
    p: Annotated[float, typer.Option("--p", help="probability a real example is replaced by a synthetic one of its class")] = 0.5,
    task: Annotated[str, typer.Option(help="classify, or retrieval (caption↔sample R@1/R@5, pair datasets)")] = "classify",
    test: Annotated[Optional[Path], typer.Option(help="a labeled real test set; default: hold out --test-fraction")] = None,
    test_fraction: Annotated[float, typer.Option(help="share of the real data held out, stratified")] = 0.5,
    labels: Annotated[Optional[Path], typer.Option(help="caption → label map (JSON object or caption,label CSV)")] = None,
    steps: Annotated[int, typer.Option(help="training steps per run (the same for every condition)")] = 300,
    batch_size: Annotated[int, typer.Option()] = 32,
    lr: Annotated[float, typer.Option(help="peak learning rate (AdamW, cosine decay)")] = 3e-3,
    image_size: Annotated[int, typer.Option(help="the CNN's input side in pixels")] = 32,
    judge: Annotated[Optional[str], typer.Option(help="CLIP/CLAP for --classifier linear; default: the toy zoo's")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Does the synthetic data help? Train on a few real examples with and without it; report paired gains."""
    _setup(verbose)

    def run() -> None:
        from pairsynth.probe.classifiers import TrainSettings
        from pairsynth.probe.errors import ProbeError
        from pairsynth.probe.protocol import ProbeConfig, probe_to_folder

        try:
            counts = tuple(int(n) for n in shots.split(",") if n.strip())
        except ValueError:
            raise ProbeError(f"--shots {shots!r}: expected comma-separated counts such as 5,10,20") from None
        config = ProbeConfig(shots=counts, draws=draws, classifier=classifier, p=p, test_fraction=test_fraction,
                             seed=seed, image_size=image_size, judge=judge,
                             train=TrainSettings(steps=steps, batch_size=batch_size, lr=lr))
        with Progress(TextColumn("[bold]training runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            job = bar.add_task("runs", total=None)
            summary = probe_to_folder(real, synthetic, out, config, task=task, test=test, labels=labels,
                                      on_progress=lambda done, total: bar.update(job, completed=done, total=total))
        metric = summary["metrics"][0]
        for result in summary["results"]:
            for condition, gain in result["gains"][metric].items():
                interval = (f"95% interval {100 * gain['low']:+.1f} … {100 * gain['high']:+.1f}"
                            if gain["low"] is not None else "no interval (one draw)")
                console.print(f"{result['shots']:>3} shots · {condition} vs {gain['over']}: {metric} "
                              f"{100 * gain['mean']:+.1f} points, {interval}, {gain['draws']} draws")
        console.print(f"→ {out / 'index.html'}")

    _fail_cleanly(run)

"""The ``pairsynth`` command line: thin commands that build the Python API's objects and call it."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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


def _run_generate(recipe_path: Path, out: Path, overwrite: bool) -> None:
    from pairsynth.generate import generate_dataset
    from pairsynth.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    target = recipe.k * len(recipe.caption_list)
    columns = (TextColumn("[bold]accepted"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("accepted", total=target, stats="loading models…")

        def show(update) -> None:
            rate = update.accepted / update.candidates if update.candidates else 0.0
            bar.update(task, completed=update.accepted,
                       stats=f"{update.candidates} candidates, {rate:.0%} accepted")

        summary = generate_dataset(recipe, out, overwrite=overwrite, on_progress=show)
        bar.update(task, completed=summary.accepted)
    console.print(f"[green]{summary.accepted}[/] pairs from {summary.candidates} candidates in "
                  f"{summary.elapsed_s:.1f} s → {out}")
    for state in summary.shortfall:
        console.print(f"[yellow]short:[/] {state.caption!r}: {state.accepted}/{summary.k} after {state.attempts} attempts")
    _print_outputs(out)


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
    """Run the shipped example recipe on the toy zoo (offline, CPU, about a minute)."""
    _setup(verbose)
    from pairsynth.demo import demo_recipe_path

    console.print(f"demo recipe: {demo_recipe_path()}")
    _fail_cleanly(lambda: _run_generate(demo_recipe_path(), out / "shapes", overwrite=True))


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

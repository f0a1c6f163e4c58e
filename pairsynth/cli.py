"""The ``pairsynth`` command line: thin commands that build the Python API's objects and call it."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pairsynth.alignment import qa as qa_defaults
from pairsynth.errors import PairsynthError, printable

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Synthesize aligned image–caption pairs, kept only when CLIP agrees.")
console = Console(stderr=True)


def _setup(verbose: bool) -> None:
    # The hub is unreachable on most machines this runs on; without these, transformers waits minutes
    # on network time-outs before falling back to local files. A user with a hub sets them to 0.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    handler = RichHandler(console=console, show_path=False)
    handler.addFilter(_escape_control_characters)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[handler])
    logging.getLogger("pairsynth").setLevel(logging.INFO)
    for noisy in ("diffusers", "transformers", "httpx", "root"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def _escape_control_characters(record: logging.LogRecord) -> bool:
    """Log lines quote file names, keys and captions from data: escape their control characters."""
    record.msg, record.args = printable(record.getMessage()), ()
    return True


def _shown(text: object) -> str:
    """Text from data or the user, safe inside a console markup string: no markup, no control characters."""
    return escape(printable(text))


@contextmanager
def _progress_bar(target: int | None) -> Iterator[Callable]:
    """A rich progress bar over accepted pairs; yields the callback the library calls per commit."""
    columns = (TextColumn("[bold]accepted"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    # not drawn into a file or pipe (CI logs, tests): there it would only add lines around the real output
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        task = bar.add_task("accepted", total=target, stats="loading models…")

        def show(update) -> None:
            rate = update.accepted / update.candidates if update.candidates else 0.0
            bar.update(task, total=update.target, completed=update.accepted,
                       stats=f"{update.candidates} candidates, {rate:.0%} accepted")

        try:
            yield show
        except BaseException:
            bar.live.transient = True  # the error line says it all; a bar stuck at "loading models…" does not
            raise


def _print_summary(summary, out: Path) -> None:
    console.print(f"[green]{summary.accepted}[/] pairs from {summary.candidates} candidates in "
                  f"{summary.elapsed_s:.1f} s → {_shown(out)}")
    if summary.times.seconds:
        console.print(f"[dim]time: {summary.times}[/]", soft_wrap=True)
    for state in summary.shortfall:
        console.print(f"[yellow]short:[/] {_shown(repr(state.key))}: {state.accepted}/{summary.k} after "
                      f"{state.attempts} attempts")
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
            console.print(f"  {_shown(out / name)}  [dim]{what}[/]")


@app.command()
def generate(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe", exists=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory; re-run to resume")],
    overwrite: Annotated[bool, typer.Option(help="discard what --out holds instead of resuming")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Generate pairs from a recipe until each caption has k accepted pairs."""
    _fail_cleanly(lambda: _run_generate(recipe, out, overwrite), verbose)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory")] = Path("out/demo"),
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the shipped example recipes on the toy zoo: image–caption and audio–caption pairs, offline."""
    from pairsynth.demo import DEMO_RECIPES, recipe_path

    def run() -> None:
        for name in DEMO_RECIPES:
            console.rule(f"{name}: {_shown(recipe_path(name))}")
            _run_generate(recipe_path(name), out / name, overwrite=True)
        reports = [_shown(out / name / "report" / "index.html") for name in DEMO_RECIPES[:2]]
        console.print(f"\nOpen {reports[0]} and {reports[1]} in a browser; load the datasets with the snippets in "
                      "the README.")

    _fail_cleanly(run, verbose)


@app.command()
def vary(
    source: Annotated[Path, typer.Argument(help="a dataset: imagefolder, WebDataset, media + .txt captions, or a pairsynth output")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory; re-run to resume")],
    per_pair: Annotated[int, typer.Option(help="accepted variations per source pair")] = 4,
    strength: Annotated[float, typer.Option(help="SDEdit strength in (0, 1]: how far from the source")] = 0.35,
    model: Annotated[Optional[str], typer.Option(help="variation model; default: the toy zoo's")] = None,
    clip: Annotated[str, typer.Option(help="the CLIP judge (image datasets)")] = "toy-shapes-clip",
    clap: Annotated[str, typer.Option(help="the CLAP judge (audio datasets)")] = "toy-sounds-clap",
    caption_template: Annotated[str, typer.Option(help="prompt and new caption, e.g. '{caption}, at night'")] = "{caption}",
    steps: Annotated[int, typer.Option()] = 20,
    guidance_scale: Annotated[float, typer.Option()] = 5.0,
    min_score: Annotated[Optional[float], typer.Option(help="CLIPScore threshold")] = None,
    band: Annotated[tuple[float, float], typer.Option(help="keep source↔variation cosine in [LOW, HIGH)")] = (0.80, 0.995),
    seed: Annotated[int, typer.Option()] = 0,
    batch_size: Annotated[int, typer.Option()] = 8,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="discard what --out holds instead of resuming")] = False,
    allow_outside_root: Annotated[bool, typer.Option(
        help="read files the dataset names outside its folder (../x.png, absolute paths, symlinks out)")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Make variations of existing pairs; keep those that still match their caption and their source."""

    def run() -> None:
        from pairsynth.vary import vary_config, vary_dataset

        config = vary_config(per_pair=per_pair, strength=strength, model=model, clip=clip, clap=clap, steps=steps,
                             caption_template=caption_template, guidance_scale=guidance_scale, min_score=min_score,
                             similarity_band=band, seed=seed, batch_size=batch_size, device=device,
                             allow_outside_root=allow_outside_root)
        with _progress_bar(None) as show:
            summary = vary_dataset(source, out, config, overwrite=overwrite, on_progress=show)
        _print_summary(summary, out)

    _fail_cleanly(run, verbose)


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
    allow_outside_root: Annotated[bool, typer.Option(
        help="read files the dataset names outside its folder (../x.png, absolute paths, symlinks out)")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Score every pair of a dataset with CLIP/CLAP and write an alignment QA report.

    A pair passes when its media are usable (readable; not blank, silent or clipped) and every judge's
    score reaches --threshold. With --fail-under the command is a gate: `--threshold 25 --fail-under 0.9`
    exits 1 when fewer than 90% of all pairs (unreadable ones included) pass. Exit 2: the dataset or a
    judge model cannot be read at all, or not one of its pairs can.
    """

    def run() -> None:
        from pairsynth.score import ScoreSettings, score_dataset

        settings = ScoreSettings(clip=clip, clap=clap, device=device, batch_size=batch_size, threshold=threshold,
                                 distractors=distractors, seed=seed, duplicate_cosine=duplicate_cosine,
                                 fail_under=fail_under, layout=layout, allow_outside_root=allow_outside_root)
        with Progress(TextColumn("[bold]scored"), TextColumn("{task.completed} items"), TimeElapsedColumn(),
                      console=console, transient=True, disable=not console.is_terminal) as bar:
            task = bar.add_task("scored", total=None)
            outcome = score_dataset(dataset, out, settings, on_progress=lambda n: bar.update(task, completed=n))
        summary = outcome.summary
        rate = summary["pass_rate"] or 0.0
        console.print(f"{summary['candidates']} pairs: [bold]{summary['accepted']}[/] ({rate:.1%}) reach score "
                      f"{threshold:g}; {len(summary['unreadable'])} unreadable → {_shown(out / 'index.html')}")
        if outcome.gate_passed is False:
            console.print(f"[red]gate failed:[/] {rate:.1%} of pairs reach {threshold:g}, "
                          f"fewer than --fail-under {fail_under:g}")
            raise typer.Exit(1)

    _fail_cleanly(run, verbose)


@app.command()
def models() -> None:
    """List the toy zoo's models and the hub models they stand in for."""
    from pairsynth.zoo import list_models

    for model in list_models():
        state = "ready" if model.available else "not trained"
        console.print(f"[bold]{model.name}[/] ({model.role}, {state}): {model.description}; "
                      f"real default: {model.real_default}")


_INPUT_ERRNOS = frozenset({errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EEXIST,
                           errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENAMETOOLONG, errno.ELOOP})
"""OS errors a user causes and can fix (a path, a permission, a full disk), whatever raised them."""


def _fail_cleanly(action: Callable[[], None], verbose: bool) -> None:
    """Run a command; turn any exception into one ``error: …`` line (``--verbose``: and its traceback).

    Exit 2: bad input (pairsynth's own errors, and OS errors about a path or the disk); exit 1: an
    internal failure, which is a bug; exit 130: interrupted.
    """
    try:
        _setup(verbose)
        action()
    except (typer.Exit, typer.Abort):
        raise
    except PairsynthError as err:
        _error(str(err))
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        _error("interrupted; run the same command again to resume from the last commit")
        raise typer.Exit(130) from None
    except OSError as err:
        if err.errno not in _INPUT_ERRNOS:
            _internal(err, verbose)
        if verbose:
            console.print_exception()
        where = f"{err.filename}: " if err.filename else ""
        _error(f"{where}{err.strerror or err}")
        raise typer.Exit(2) from None
    except Exception as err:  # noqa: BLE001 - the last resort: one line, never a stack trace unasked
        _internal(err, verbose)


def _internal(err: BaseException, verbose: bool) -> None:
    if verbose:
        console.print_exception()
    hint = "" if verbose else " (re-run with --verbose for the traceback)"
    message = " ".join(str(err).split()) or "no message"
    _error(f"internal error, a bug in pairsynth: {type(err).__name__}: {message[:500]}{hint}")
    raise typer.Exit(1) from None


def _error(message: str) -> None:
    """One ``error:`` line per line of the message, never wrapped, with data made safe to print."""
    for line in message.splitlines() or [""]:
        console.print(f"[red]error:[/] {_shown(line)}", highlight=False, soft_wrap=True)

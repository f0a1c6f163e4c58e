from pairsynth.cli import app

app()

from loadgate.cli import app

app(prog_name="loadgate")

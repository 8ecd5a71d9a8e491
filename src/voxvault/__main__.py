from voxvault.cli import app

app()

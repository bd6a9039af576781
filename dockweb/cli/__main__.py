from dockweb.cli.main import entry

entry()
